"""`pushgate send`: a targeted push through a running server, one request per recipient, so
that every line of the answer belongs to the identifier it was asked for (the API's
successes name devices, not the identifiers that found them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import click

from pushgate.client import PushgateClient, PushgateError
from pushgate.targeting.schema import Notification
from pushgate.toolbox.render import SendLine, mask

IDENTIFIER_ALIASES = {"phone": "phone_number"}
REPORT = ["INSIDER.device_token", "INSIDER.platform", "INSIDER.insider_id"]


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


@dataclass(frozen=True, slots=True)
class Content:
    camp_id: int
    camp_name: str
    title: str
    message: str
    image_url: str = ""
    ttl: int | None = None

    def notification(self, identifiers: dict[str, str]) -> Notification:
        return Notification(
            identifiers=identifiers,
            camp_id=self.camp_id,
            camp_name=self.camp_name,
            title=self.title,
            message=self.message,
            image_url=self.image_url,
            ttl=self.ttl,
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
