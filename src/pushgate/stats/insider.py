"""The Insider-compatible Statistics API answer (insider-ecosystem.md §2), pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pushgate.stats.campaign import Campaign
from pushgate.stats.funnel import open_rate_text
from pushgate.wire.errors import ErrorBody
from pushgate.wire.stats import Statistics, StatisticsCampaign

BAD_API_KEY = ErrorBody(error="Bad Api Key.")
SEGMENT_NAME = "Targeted Push API"  # pushgate has no segments: the campaign's audience is the API


def merged_deep_links(links: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One deep-link object per campaign: Android's (and Huawei's) keys, then iOS-only keys."""
    merged = dict(links.get("android", {}))
    for key, value in links.get("ios", {}).items():
        merged.setdefault(key, value)
    return merged


def statistics(campaigns: Sequence[Campaign]) -> Statistics:
    delivered = sum(c.funnel.delivered for c in campaigns)
    opened = sum(c.funnel.opened for c in campaigns)
    return Statistics(
        campaigns=[
            StatisticsCampaign(
                id=c.camp_id,
                name=c.name,
                delivery_count=c.funnel.delivered,
                session_count=c.funnel.opened,
                open_rate=open_rate_text(c.funnel.opened, c.funnel.delivered),
                message=c.message,
                title=c.title,
                segment_name=SEGMENT_NAME,
                deep_link=merged_deep_links(c.deep_links),
                push_image=c.image_url,
                scheduled_count=c.funnel.scheduled,
                cancelled_count=c.funnel.cancelled,
            )
            for c in campaigns
        ],
        total_camp_count=len(campaigns),
        total_delivery_count=delivered,
        total_session_count=opened,
        total_open_rate=open_rate_text(opened, delivered),
    )
