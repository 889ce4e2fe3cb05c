"""Larger sends as several Targeted Push API requests, and their answers as one.

A request may hold at most 20 notifications and 50 identifier values in all
(targeted-push-api.txt, "Limitations"; insider-ecosystem.md §1). Identifiers are counted the
way the server counts them (`pushgate.targeting.validate`): per notification, distinct after
normalisation, empty values ignored, each value under `custom` counting once.

When a send needs several requests, every one of them is checked first with the server's own
validation (`precheck`), so that a notification the server would refuse stops the send before
its first request rather than after some of it was queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pushgate.client.encode import encode
from pushgate.payloads.build import MAX_PAYLOAD_BYTES, build_all, oversized
from pushgate.targeting import errors as api_errors
from pushgate.targeting import validate
from pushgate.wire.push import Notification, TargetedPushRequest, TargetedPushResponse

MAX_NOTIFICATIONS = validate.MAX_NOTIFICATIONS
MAX_IDENTIFIERS = validate.MAX_IDENTIFIERS


def identifier_count(notification: Notification) -> int:
    """The identifier values of one notification that count toward the request's limit."""
    found: set[object] = set()
    for key, value in (notification.identifiers or {}).items():
        pairs = value.items() if key == "custom" and isinstance(value, dict) else [(key, value)]
        for name, inner in pairs:
            if not isinstance(inner, str):
                found.add(object())  # the server refuses it (invalid_type); it still takes room
            elif (ident := validate.normalise_identifier(str(name), inner)) is not None:
                found.add(ident)
    return len(found)


def plan(
    notifications: Sequence[Notification],
    max_notifications: int = MAX_NOTIFICATIONS,
    max_identifiers: int = MAX_IDENTIFIERS,
) -> list[list[Notification]]:
    """Consecutive groups, in order, each within both limits. A notification that alone has
    more identifiers than a request may hold gets a group of its own (the server refuses it).
    No notifications: one empty group, for the server to refuse."""
    chunks: list[list[Notification]] = []
    current: list[Notification] = []
    weight = 0
    for n in notifications:
        count = identifier_count(n)
        if current and (len(current) >= max_notifications or weight + count > max_identifiers):
            chunks.append(current)
            current, weight = [], 0
        current.append(n)
        weight += count
    chunks.append(current)
    return chunks


def request(
    api_key: str,
    notifications: Sequence[Notification],
    report_attributes: Sequence[str] | None,
    is_async: bool,
) -> TargetedPushRequest:
    return TargetedPushRequest(
        api_key=api_key,
        notifications=list(notifications),
        report_attributes=None if report_attributes is None else list(report_attributes),
        is_async=is_async,
    )


def precheck(
    chunks: Sequence[Sequence[Notification]], report_attributes: Sequence[str] | None
) -> None:
    """Raise the `ApiError` the server would answer a chunk with, for the rules that depend on
    the request alone: its schema, the spec's rules, the 4 KB payload limit."""
    for chunk in chunks:
        body = encode(request("", chunk, report_attributes, False))
        decoded = validate.decode(body)
        if decoded.error is not None:
            raise decoded.error
        assert decoded.request is not None
        for push in validate.validate(decoded.request):
            if (too_big := oversized(build_all(push))) is not None:
                raise api_errors.payload_too_large(too_big[0], too_big[1], MAX_PAYLOAD_BYTES)


class Merged:
    """The answers of a send's requests, as the one answer a single request would have given:
    successes in order, each reason's identifiers in order, opt-in counts added up."""

    def __init__(self) -> None:
        self.successes: list[dict[str, Any]] = []
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self.optin: int | None = None

    def add(self, answer: TargetedPushResponse) -> None:
        self.successes.extend(answer.successes)
        for reason, users in answer.errors.items():
            self.errors.setdefault(reason, []).extend(users)
        if answer.optin_delivery_count is not None:
            self.optin = (self.optin or 0) + answer.optin_delivery_count

    def result(self) -> TargetedPushResponse:
        return TargetedPushResponse(
            successes=list(self.successes),
            errors={reason: list(users) for reason, users in self.errors.items()},
            optin_delivery_count=self.optin,
        )
