"""One wrapper per key a header carries, for the routes answering in the API's error shape:
the key is checked (and counted when bad, limits/bad_keys.py), and the handler is given the
partner it belongs to. Families with errors of their own (the Insider FCM upload, Message
Center, the user data API, the push body's `api_key`) check their keys where they answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pushgate.api.http import Request, Response, json_response
from pushgate.api.push import error_response
from pushgate.auth import PartnerCache
from pushgate.store.models import Partner
from pushgate.targeting.errors import ApiError

INVALID_API_KEY = ApiError(401, "invalid_api_key", "'X-API-KEY' is either empty or wrong")
BAD_SDK_KEY = ApiError(401, "bad_sdk_key", "'X-SDK-KEY' is either empty or wrong")

Handler = Callable[[Partner, Request], Awaitable[Response]]
Route = Callable[[Request], Awaitable[Response]]


def api_key(partners: PartnerCache, handler: Handler) -> Route:
    """`X-API-KEY`, the partner's own API key, from an allowed address."""

    async def route(request: Request) -> Response:
        try:
            key = request.header(b"x-api-key")
            partner = await partners.admit("api_key", key, request.client_ip)
            if partner is None:
                raise INVALID_API_KEY
            return await handler(partner, request)
        except ApiError as error:
            return error_response(error)

    return route


def sdk_key(partners: PartnerCache, handler: Handler) -> Route:
    """`X-SDK-KEY`, the key shipped in the app (no allow list: phones call from anywhere)."""

    async def route(request: Request) -> Response:
        try:
            key = request.header(b"x-sdk-key")
            partner = await partners.admit("sdk_key", key, request.client_ip, allow_list=False)
            if partner is None:
                raise BAD_SDK_KEY
            return await handler(partner, request)
        except ApiError as error:
            return error_response(error)

    return route


def answering(read: Callable[[Partner, Request], Awaitable[object]]) -> Handler:
    """A read whose result is the 200 answer."""

    async def handler(partner: Partner, request: Request) -> Response:
        return json_response(200, await read(partner, request))

    return handler
