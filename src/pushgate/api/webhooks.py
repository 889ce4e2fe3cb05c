"""The partner's webhook: PUT, GET, DELETE /api/v1/webhook and POST /api/v1/webhook/rotate-secret
(contract.md, "Webhooks"; `X-API-KEY`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pushgate.api.http import Request, Response, json_response
from pushgate.store.models import Partner
from pushgate.store.webhooks import Webhook, WebhookStore
from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import parse_json
from pushgate.webhooks import addresses, events, signing
from pushgate.wire.webhooks import DashboardWebhook, WebhookAnswer, WebhookStatus

PATH = "/api/v1/webhook"
ROTATE_PATH = PATH + "/rotate-secret"
NOT_FOUND = ApiError(404, "webhook_not_found", "This partner has no webhook.")

Handler = Callable[[Partner, Request], Awaitable[Response]]


def _listed(subscribed: Sequence[str] | None) -> list[str]:
    return list(events.EVENT_TYPES if subscribed is None else subscribed)


def _invalid_url(why: str) -> ApiError:
    return ApiError(400, "invalid_webhook_url", f"The webhook url cannot be used: {why}.")


class WebhookRoutes:
    def __init__(
        self,
        store: WebhookStore,
        networks: Sequence[addresses.Network],
    ) -> None:
        """Behind `keyed.api_key`."""
        self.store = store
        self.networks = tuple(networks)

    async def put(self, partner: Partner, request: Request) -> Response:
        body = parse_json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise _invalid_url("the body must be an object with a url string")
        try:
            subscribed = events.parse_events(body.get("events"))
        except ValueError as error:
            raise ApiError(400, "invalid_webhook_events", f"{error}.") from None
        url: str = body["url"]
        try:
            await addresses.allowed_url(url, self.networks)
        except addresses.RefusedUrl as refused:
            raise _invalid_url(str(refused)) from None
        existing = await self.store.get(partner.id)
        secret = existing.secret if existing is not None else signing.new_secret()
        await self.store.save(partner.id, url, subscribed, secret)
        shown = None if existing is not None else secret
        return json_response(200, WebhookAnswer(url=url, events=_listed(subscribed), secret=shown))

    async def get(self, partner: Partner, request: Request) -> Response:
        status = await self.status_of(partner)
        if status is None:
            raise NOT_FOUND
        return json_response(200, status)

    async def dashboard(self, partner: Partner, request: Request) -> DashboardWebhook:
        """The dashboard's read (GET /dashboard/api/webhook)."""
        return DashboardWebhook(webhook=await self.status_of(partner))

    async def status_of(self, partner: Partner) -> WebhookStatus | None:
        found = await self.store.get(partner.id)
        if found is None:
            return None
        return WebhookStatus(
            url=found.url,
            events=_listed(found.events),
            enabled=found.enabled,
            last_error=found.last_error,
        )

    async def delete(self, partner: Partner, request: Request) -> Response:
        if not await self.store.delete(partner.id):
            raise NOT_FOUND
        return Response(204, b"")

    async def rotate(self, partner: Partner, request: Request) -> Response:
        found = await self._found(partner)
        secret = signing.new_secret()
        await self.store.rotate(partner.id, secret)
        return json_response(
            200, WebhookAnswer(url=found.url, events=_listed(found.events), secret=secret)
        )

    async def _found(self, partner: Partner) -> Webhook:
        found = await self.store.get(partner.id)
        if found is None:
            raise NOT_FOUND
        return found
