"""Statistics reads: get_statistics and Message Center (insider-ecosystem.md §2, §3), and
pushgate's campaign list and report (docs/statistics.md)."""

from __future__ import annotations

import datetime
from typing import Annotated

import msgspec

# Always sent in UTC with its `Z`; the zone also makes the schema say `date-time`.
UtcTime = Annotated[datetime.datetime, msgspec.Meta(tz=True)]
# Insider's format: "% " then the percentage with two decimals.
OpenRateText = Annotated[str, msgspec.Meta(pattern=r"^% [0-9]+\.[0-9]{2}$")]

# ---- POST /api/v1/notification/get_statistics ----


class StatisticsRequest(msgspec.Struct, kw_only=True):
    api_key: str


class StatisticsCampaign(msgspec.Struct, kw_only=True):
    id: int  # the camp_id
    name: str
    delivery_count: int  # users whose app confirmed the push
    session_count: int  # users who opened it
    open_rate: OpenRateText  # "% 40.00"
    message: str
    title: str
    segment_name: str
    deep_link: dict[str, str]
    push_image: str
    # pushgate's additions (contract.md's scheduling section), after Insider's fields:
    scheduled_count: int = 0  # pushes waiting for their time
    cancelled_count: int = 0  # pushes failed as `Cancelled`


class Statistics(msgspec.Struct, kw_only=True):
    """Campaigns first used since 00:00 UTC today."""

    campaigns: list[StatisticsCampaign]
    total_camp_count: int
    total_delivery_count: int
    total_session_count: int
    total_open_rate: OpenRateText


# ---- POST /api/message_center/v1 ----


class MessageCenterQuery(msgspec.Struct, kw_only=True, omit_defaults=True):
    # One user: Email, Phone, Uuid (or email, phone_number, uuid), or a custom identifier.
    identifiers: dict[str, str]
    start_date: int | None = None  # epoch seconds, inclusive; default 0
    end_date: int | None = None  # epoch seconds, inclusive; default now
    limit: int | None = None  # 1..100; default 100


class MessageCenterEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A push the provider accepted for the user; the answer is a bare array, newest first."""

    camp_id: int
    camp_type: str  # "Single Push"
    created_at: UtcTime
    deep_links: dict[str, str]
    # Only when the push had one; here, not last, as the field order is the bytes' order.
    image_url: str | None = None
    message: str
    title: str
    variant_id: int


# ---- GET /api/v1/campaigns ----


class CampaignSummary(msgspec.Struct, kw_only=True):
    camp_id: int
    name: str
    title: str
    message: str
    created_at: UtcTime
    requested: int
    queued: int
    scheduled: int  # queued and waiting for their time (send_at, local_time, quiet hours)
    accepted: int
    failed: int  # cancelled included
    cancelled: int  # failed as `Cancelled`: the campaign was cancelled before they were sent
    expired: int
    delivered: int
    opened: int
    open_rate: float  # percent, two decimals


class CampaignPage(msgspec.Struct, kw_only=True):
    campaigns: list[CampaignSummary]  # newest first
    page: int
    per_page: int
    total: int


# ---- POST /api/v1/campaigns/{camp_id}/cancel ----


class CampaignCancelled(msgspec.Struct, kw_only=True):
    camp_id: int
    cancelled: int  # pushes that had not been handed to a provider: now failed `Cancelled`


# ---- GET /api/v1/campaigns/{camp_id}/report ----


class FunnelCounts(msgspec.Struct, kw_only=True):
    requested: int
    resolved: int
    excluded: dict[str, int]  # only the reasons that occurred
    queued: int
    scheduled: int  # of the queued, those waiting for their time
    accepted: int
    failed: int  # cancelled included
    cancelled: int  # failed as `Cancelled`
    expired: int
    pending: int  # queued, not yet accepted, failed or expired (scheduled included)
    delivered: int
    opened: int


class Rates(msgspec.Struct, kw_only=True):
    delivery_rate: float  # delivered / accepted, percent
    open_rate: float  # opened / delivered, percent


class PlatformCounts(msgspec.Struct, kw_only=True):
    queued: int
    accepted: int
    failed: int
    expired: int


class FailRecord(msgspec.Struct, kw_only=True):
    name: str  # Unregistered, BadDeviceToken, NotRegistered, ..., Expired, UserDeleted
    count: int
    platforms: dict[str, int]
    sample_tokens: list[str]  # up to 5, newest first


class SeriesPoint(msgspec.Struct, kw_only=True):
    hour: UtcTime  # UTC, on the hour
    requested: int
    queued: int
    accepted: int
    failed: int
    expired: int
    delivered: int
    opened: int


class CampaignReport(msgspec.Struct, kw_only=True):
    camp_id: int
    name: str
    title: str
    message: str
    created_at: UtcTime
    image_url: str
    funnel: FunnelCounts
    rates: Rates
    platforms: dict[str, PlatformCounts]  # ios, android, huawei: always all three
    fail_records: list[FailRecord]  # highest count first, then by name
    series: list[SeriesPoint]  # hours with any count, oldest first
