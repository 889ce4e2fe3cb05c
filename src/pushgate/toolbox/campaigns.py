"""Campaign lists and reports, from a server (`X-API-KEY`) or read on the data dir by the
store's own functions; both give the JSON of docs/statistics.md, decoded into the same
`pushgate.wire` Structs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from pushgate.stats import campaign
from pushgate.store import campaign_stats
from pushgate.store.db import Db
from pushgate.wire.stats import CampaignPage, CampaignReport

T = TypeVar("T")


def _as(kind: type[T], value: Any) -> T:
    # Through JSON, as a server's answer would be: the same decoder, the same types.
    return msgspec.json.decode(msgspec.json.encode(value), type=kind)


def page_on_db(conn: Db, partner_id: int, params: Mapping[str, str]) -> CampaignPage:
    """Raises ValueError naming a bad parameter, as the endpoint answers 400."""
    query = campaign.parse_list_query(params)
    total, found = campaign_stats.list_campaigns(
        conn, partner_id, query.start, query.end, query.offset, query.per_page
    )
    return _as(CampaignPage, campaign.listing(total, query, found))


def report_on_db(conn: Db, partner_id: int, camp_id: int) -> CampaignReport | None:
    found = campaign_stats.campaign_report(conn, partner_id, camp_id)
    return None if found is None else _as(CampaignReport, found)
