"""A campaign and the answers of pushgate's own report and list endpoints (pure)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pushgate.stats import funnel
from pushgate.stats.funnel import Funnel
from pushgate.wire.stats import CampaignPage, CampaignReport, CampaignSummary


@dataclass(frozen=True)
class Campaign:
    camp_id: int
    name: str
    title: str
    message: str
    image_url: str
    deep_links: Mapping[str, Mapping[str, str]]  # per platform family: "android", "ios"
    created_at: float
    funnel: Funnel


def list_entry(c: Campaign) -> CampaignSummary:
    f = c.funnel.summary()
    return CampaignSummary(
        camp_id=c.camp_id,
        name=c.name,
        title=c.title,
        message=c.message,
        created_at=funnel.instant(c.created_at),
        requested=f.requested,
        queued=f.queued,
        scheduled=f.scheduled,
        accepted=f.accepted,
        failed=f.failed,
        cancelled=f.cancelled,
        expired=f.expired,
        delivered=f.delivered,
        opened=f.opened,
        open_rate=c.funnel.rates().open_rate,
    )


def report(
    c: Campaign,
    hours: Iterable[tuple[int, str, int]],
    fails: Iterable[tuple[str, str, int]],
    samples: dict[str, list[str]],
) -> CampaignReport:
    """`hours`: counter rows (hour, name, count); `fails`: fail records counted by
    (name, platform); `samples`: the newest tokens per fail-record name."""
    return CampaignReport(
        camp_id=c.camp_id,
        name=c.name,
        title=c.title,
        message=c.message,
        created_at=funnel.instant(c.created_at),
        image_url=c.image_url,
        funnel=c.funnel.summary(),
        rates=c.funnel.rates(),
        platforms=c.funnel.platform_counts(),
        fail_records=[g.record() for g in funnel.fail_groups(fails, samples)],
        series=funnel.series(hours),
    )


MAX_PER_PAGE = 200


@dataclass(frozen=True)
class ListQuery:
    start: float
    end: float
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def parse_instant(text: str) -> float:
    """Epoch seconds, an ISO-8601 date (midnight UTC) or date-time (UTC unless it says)."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(text)
        return seconds
    when = datetime.datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """Raises ValueError naming the parameter at fault."""

    def instant(name: str, default: float) -> float:
        text = params.get(name)
        if text is None or text == "":
            return default
        try:
            return parse_instant(text)
        except ValueError:
            raise ValueError(
                f"'{name}' must be an ISO-8601 date or date-time, or epoch seconds"
            ) from None

    def integer(name: str, default: int, low: int, high: int) -> int:
        text = params.get(name)
        try:
            value = default if text is None or text == "" else int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ValueError(f"'{name}' must be an integer between {low} and {high}")
        return value

    return ListQuery(
        start=instant("from", float("-inf")),
        end=instant("to", float("inf")),
        page=integer("page", 1, 1, 1_000_000),
        per_page=integer("per_page", 50, 1, MAX_PER_PAGE),
    )


def listing(total: int, query: ListQuery, campaigns: Iterable[Campaign]) -> CampaignPage:
    return CampaignPage(
        campaigns=[list_entry(c) for c in campaigns],
        page=query.page,
        per_page=query.per_page,
        total=total,
    )
