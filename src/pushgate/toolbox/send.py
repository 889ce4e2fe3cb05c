"""`pushgate send`: a targeted push through a running server, one request per recipient, so
that every line of the answer belongs to the identifier it was asked for (the API's
successes name devices, not the identifiers that found them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import click

from pushgate.client import PushgateClient, PushgateError
from pushgate.targeting import timing
from pushgate.targeting.errors import ApiError
from pushgate.targeting.schema import Notification
from pushgate.toolbox.render import SendLine, mask

IDENTIFIER_ALIASES = {"phone": "phone_number"}
REPORT = ["INSIDER.device_token", "INSIDER.platform", "INSIDER.insider_id"]
_RELATIVE = re.compile(r"\+([0-9]{1,7})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_target(text: str) -> dict[str, str]:
    """`email:a@b.co`, `phone_number:+65...`, `uuid:u1`; any other kind is a custom
    identifier of that name (contract.md)."""
    kind, colon, value = text.partition(":")
    kind = IDENTIFIER_ALIASES.get(kind.strip().lower(), kind.strip())
    if not colon or not kind or not value.strip():
        raise click.BadParameter(
            f"{text!r} is not KIND:VALUE, like email:ada@example.com", param_hint="--to"
        )
    return {kind: value.strip()}


def parse_at(text: str, now: float) -> float:
    """`--at`: an RFC 3339 date-time with offset or Unix seconds, read by the server's own rule
    (`targeting.timing.parse_send_at`, 30 days ahead at most), or `+10m`, `+2h`, `+1d`, `+30s`
    from `now`. Epoch seconds; click.BadParameter names what is wrong."""
    text = text.strip()
    if text.startswith("+"):
        m = _RELATIVE.fullmatch(text)
        if m is None:
            raise click.BadParameter(
                f"{text!r} is not +N followed by s, m, h or d (+30s, +10m, +2h, +1d)",
                param_hint="--at",
            )
        text = str(round(now + int(m.group(1)) * _UNIT_SECONDS[m.group(2)]))
    try:
        seconds = timing.parse_send_at(text, now)
    except ApiError as exc:
        # The server's message names the JSON field; here it is the option.
        raise click.BadParameter(
            exc.message.replace("'send_at' ", "", 1), param_hint="--at"
        ) from None
    assert seconds is not None  # a str is never None
    return seconds


def parse_local_time(text: str) -> str:
    """`--local-time`: "HH:MM", as the server reads it."""
    try:
        timing.parse_local_time(text)
    except ApiError:
        raise click.BadParameter(
            f'{text!r} is not "HH:MM" between 00:00 and 23:59', param_hint="--local-time"
        ) from None
    return text


@dataclass(frozen=True, slots=True)
class Content:
    camp_id: int
    camp_name: str
    title: str
    message: str
    image_url: str = ""
    ttl: int | None = None
    send_at: float | None = None  # epoch seconds (`parse_at`)
    local_time: str | None = None
    ignore_quiet_hours: bool = False

    def notification(self, identifiers: dict[str, str]) -> Notification:
        return Notification(
            identifiers=identifiers,
            camp_id=self.camp_id,
            camp_name=self.camp_name,
            title=self.title,
            message=self.message,
            image_url=self.image_url,
            ttl=self.ttl,
            send_at=self.send_at,
            local_time=self.local_time,
            ignore_quiet_hours=self.ignore_quiet_hours,
        )


class SendStopped(Exception):
    """A request was refused: the lines of the recipients sent before it, and why."""

    def __init__(self, lines: list[SendLine], error: PushgateError) -> None:
        super().__init__(str(error))
        self.lines = lines
        self.error = error


def send_each(client: PushgateClient, targets: Sequence[str], content: Content) -> list[SendLine]:
    lines: list[SendLine] = []
    for target in targets:
        identifiers = parse_target(target)
        try:
            answer = client.send([content.notification(identifiers)], report_attributes=REPORT)
        except PushgateError as error:
            raise SendStopped(lines, error) from error
        for success in answer.successes:
            lines.append(
                SendLine(
                    target,
                    "sent",
                    str(success.get("INSIDER.platform") or ""),
                    mask(success.get("INSIDER.device_token")),
                    str(success.get("INSIDER.insider_id") or ""),
                )
            )
        for reason, users in answer.errors.items():
            lines += [SendLine(target, reason) for _ in users]
    return lines
