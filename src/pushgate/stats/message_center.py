"""Message Center (`POST /api/message_center/v1`, insider-ecosystem.md §3): the request and the
answer (pure). Its errors are plain text, unlike the rest of the API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pushgate.stats.funnel import instant
from pushgate.targeting.push import Identifier
from pushgate.targeting.validate import normalise_identifier
from pushgate.wire.stats import MessageCenterEntry

BAD_PAYLOAD = "bad payload"
BAD_LIMIT = "limit should be between 1 and 100."
BAD_API_KEY = "bad api key"
MAX_LIMIT = 100
CAMP_TYPE = "Single Push"
# Message Center capitalises the standard identifiers.
_KEYS = {"Email": "email", "Phone": "phone_number", "Uuid": "uuid"}


class MessageCenterError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True, slots=True)
class InboxQuery:
    identifiers: tuple[Identifier, ...]
    start: float
    end: float
    limit: int


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_query(body: Any, now: float) -> InboxQuery:
    bad = MessageCenterError(400, BAD_PAYLOAD)
    if not isinstance(body, Mapping):
        raise bad
    sent = body.get("identifiers")
    if not isinstance(sent, Mapping) or not sent:
        raise bad
    identifiers: list[Identifier] = []
    for key, value in sent.items():
        if not isinstance(value, str):
            raise bad
        found = normalise_identifier(_KEYS.get(str(key)) or str(key), value)
        if found is not None:
            identifiers.append(found)
    if not identifiers:
        raise bad
    start = _integer(body.get("start_date", 0))
    end = _integer(body.get("end_date", int(now)))
    limit = _integer(body.get("limit", MAX_LIMIT))
    if start is None or end is None or limit is None:
        raise bad
    if start > end:
        raise bad
    if not 1 <= limit <= MAX_LIMIT:
        raise MessageCenterError(400, BAD_LIMIT)
    return InboxQuery(tuple(identifiers), float(start), float(end), limit)


@dataclass(frozen=True, slots=True)
class SentPush:
    camp_id: int
    variant_id: int
    platform: str
    created_at: float
    title: str
    message: str
    image_url: str
    deep_links: Mapping[str, Mapping[str, str]]  # per platform family: "android", "ios"


def answer(pushes: Sequence[SentPush]) -> list[MessageCenterEntry]:
    """The bare array of the answer; `image_url` only when the push had one."""
    return [
        MessageCenterEntry(
            camp_id=p.camp_id,
            camp_type=CAMP_TYPE,
            created_at=instant(p.created_at),
            deep_links=dict(p.deep_links.get("ios" if p.platform == "ios" else "android", {})),
            image_url=p.image_url or None,  # None: left out of the entry
            message=p.message,
            title=p.title,
            variant_id=p.variant_id,
        )
        for p in pushes
    ]
