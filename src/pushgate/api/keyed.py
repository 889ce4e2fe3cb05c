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
from pushgate.store.partners import KeyKind
from pushgate.targeting.errors import ApiError

INVALID_API_KEY = ApiError(401, "invalid_api_key", "'X-API-KEY' is either empty or wrong")
BAD_SDK_KEY = ApiError(401, "bad_sdk_key", "'X-SDK-KEY' is either empty or wrong")

Handler = Callable[[Partner, Request], Awaitable[Response]]
Route = Callable[[Request], Awaitable[Response]]


def _checked(
    partners: PartnerCache,
    handler: Handler,
    kind: KeyKind,
    header: bytes,
    refused: ApiError,
    allow_list: bool,
) -> Route:
    async def route(request: Request) -> Response:
        try:
            key = request.header(header)
            partner = await partners.admit(kind, key, request.client_ip, allow_list=allow_list)
            if partner is None:
                raise refused
            return await handler(partner, request)
        except ApiError as error:
            return error_response(error)

    return route


def api_key(partners: PartnerCache, handler: Handler) -> Route:
    """`X-API-KEY`, the partner's own API key, from an allowed address."""
    return _checked(partners, handler, "api_key", b"x-api-key", INVALID_API_KEY, True)


def sdk_key(partners: PartnerCache, handler: Handler) -> Route:
    """`X-SDK-KEY`, the key shipped in the app (no allow list: phones call from anywhere)."""
    return _checked(partners, handler, "sdk_key", b"x-sdk-key", BAD_SDK_KEY, False)


def answering(read: Callable[[Partner, Request], Awaitable[object]]) -> Handler:
    """A read whose result is the 200 answer."""

    async def handler(partner: Partner, request: Request) -> Response:
        return json_response(200, await read(partner, request))

    return handler
