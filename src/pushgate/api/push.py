"""POST /api/v2/notification/user: the Targeted Push API."""

from __future__ import annotations

from pushgate.api.http import Request, Response, error_json, json_response
from pushgate.push_service import PushService
from pushgate.targeting.errors import ApiError

REPLAYED = ((b"idempotent-replayed", b"true"),)


def error_response(error: ApiError) -> Response:
    headers = (
        [] if error.retry_after is None else [(b"retry-after", str(error.retry_after).encode())]
    )
    return error_json(error.status, error.code, error.message, headers)


def targeted_push(service: PushService):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        try:
            answer = await service.targeted_push(
                request.body, request.client_ip, request.header(b"idempotency-key")
            )
        except ApiError as error:
            return error_response(error)
        if isinstance(answer.body, bytes):  # replayed as stored
            return Response(answer.status, answer.body, headers=REPLAYED)
        return json_response(answer.status, answer.body)

    return handler
