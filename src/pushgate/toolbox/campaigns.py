"""Campaign lists and reports, from a server (`X-API-KEY`) or read on the data dir by the
store's own functions; both give the same `pushgate.wire` Structs (docs/statistics.md): the
server encodes the very ones the store's functions build here."""

from __future__ import annotations

from collections.abc import Mapping

from pushgate.stats import campaign
from pushgate.store import campaign_stats
from pushgate.store.db import Db
from pushgate.wire.stats import CampaignPage, CampaignReport


def page_on_db(conn: Db, partner_id: int, params: Mapping[str, str]) -> CampaignPage:
    """Raises ValueError naming a bad parameter, as the endpoint answers 400."""
    query = campaign.parse_list_query(params)
    total, found = campaign_stats.list_campaigns(
        conn, partner_id, query.start, query.end, query.offset, query.per_page
    )
    return campaign.listing(total, query, found)


def report_on_db(conn: Db, partner_id: int, camp_id: int) -> CampaignReport | None:
    return campaign_stats.campaign_report(conn, partner_id, camp_id)
