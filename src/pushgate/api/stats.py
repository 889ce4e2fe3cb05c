"""Statistics reads: the Insider-compatible Statistics API and Message Center (insider-ecosystem.md
§2, §3), pushgate's campaign list and report (docs/statistics.md), and app events from the SDK;
and cancelling a campaign, which ends its waiting pushes as failed `Cancelled` fail records."""

from __future__ import annotations

import time

from pushgate.api.http import Request, Response, json_response, text_response
from pushgate.api.push import error_response
from pushgate.auth import PartnerCache, body_api_key
from pushgate.stats import campaign, insider
from pushgate.stats.events import parse_events
from pushgate.stats.message_center import BAD_API_KEY as MC_BAD_API_KEY
from pushgate.stats.message_center import BAD_PAYLOAD, MessageCenterError, answer, parse_query
from pushgate.store.models import Partner
from pushgate.store.store import Store
from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import parse_json
from pushgate.wire.sdk import EventsResult
from pushgate.wire.stats import CampaignCancelled, CampaignPage, CampaignReport

USER_NOT_FOUND = ApiError(404, "user_not_found", "no user of this app has that insider_id")
REPORT_PATH = "/api/v1/campaigns/{camp_id}/report"
CANCEL_PATH = "/api/v1/campaigns/{camp_id}/cancel"


def campaign_not_found(camp_id: int) -> ApiError:
    return ApiError(404, "campaign_not_found", f"no campaign with camp_id {camp_id}")


def camp_id_of(request: Request) -> int:
    """The `{camp_id}` of the path; one that is not a camp_id names no endpoint."""
    given = request.path_params["camp_id"]
    if not given.isdigit() or len(given) > 18:
        raise ApiError(404, "not_found", f"no endpoint at {request.path}")
    return int(given)


def start_of_today(now: float) -> float:
    return now - now % 86400


class StatsRoutes:
    def __init__(self, store: Store, partners: PartnerCache) -> None:
        self.store = store
        self.partners = partners

    async def get_statistics(self, request: Request) -> Response:
        try:
            key = body_api_key(parse_json(request.body))
            partner = await self.partners.admit("api_key", key, request.client_ip)
        except ApiError as error:
            return error_response(error)
        if partner is None:
            return json_response(401, insider.BAD_API_KEY)
        since = start_of_today(time.time())
        return json_response(
            200, insider.statistics(await self.store.campaigns_since(partner.id, since))
        )

    async def message_center(self, request: Request) -> Response:
        try:
            partner = await self.partners.admit(
                "api_key", request.header(b"x-insider-api-key"), request.client_ip
            )
        except ApiError as error:  # this family answers in plain text
            if error.retry_after is not None:
                response = text_response(error.status, error.message)
                response.headers = ((b"retry-after", str(error.retry_after).encode()),)
                return response
            return text_response(403, "ip not allowed")
        if partner is None:
            return text_response(401, MC_BAD_API_KEY)
        try:
            query = parse_query(parse_json(request.body), time.time())
        except MessageCenterError as error:
            return text_response(error.status, error.text)
        except ApiError:  # not JSON at all
            return text_response(400, BAD_PAYLOAD)
        return json_response(200, answer(await self.store.inbox(partner.id, query)))

    async def campaigns(self, partner: Partner, request: Request) -> CampaignPage:
        try:
            query = campaign.parse_list_query(request.query)
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        total, found = await self.store.list_campaigns(
            partner.id, query.start, query.end, query.offset, query.per_page
        )
        return campaign.listing(total, query, found)

    async def report(self, partner: Partner, request: Request) -> CampaignReport:
        """`.../campaigns/{camp_id}/report`, under the API's prefix or the dashboard's."""
        camp_id = camp_id_of(request)
        found = await self.store.campaign_report(partner.id, camp_id)
        if found is None:
            raise campaign_not_found(camp_id)
        return found

    async def cancel(self, partner: Partner, request: Request) -> CampaignCancelled:
        """POST /api/v1/campaigns/{camp_id}/cancel (contract.md)."""
        camp_id = camp_id_of(request)
        cancelled = await self.store.cancel_campaign(partner.id, camp_id)
        if cancelled is None:
            raise campaign_not_found(camp_id)
        return CampaignCancelled(camp_id=camp_id, cancelled=cancelled)

    async def events(self, partner: Partner, request: Request) -> Response:
        """POST /api/sdk/v1/events (contract.md): the app's receipts and opens (behind
        `keyed.sdk_key`)."""
        batch = parse_events(parse_json(request.body), time.time())
        recorded = await self.store.record_events(partner.id, batch)
        if recorded is None:
            raise USER_NOT_FOUND
        return json_response(
            200,
            EventsResult(
                accepted=recorded.accepted,
                duplicates=recorded.duplicates,
                unknown_campaigns=recorded.unknown_campaigns,
            ),
        )
