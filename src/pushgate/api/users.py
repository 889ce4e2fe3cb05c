"""User data: /api/user/v1/upsert, /profile and /delete (insider-ecosystem.md §4).

This family has its own error shape, `{"error": "<text>"}`, and reports invalid
users inside a 200 answer.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgspec

from pushgate.api.http import Handler, Request, Response, error_json, json_response
from pushgate.api.push import REPLAYED, error_response
from pushgate.auth import PartnerCache
from pushgate.limits.rate import RateLimiter
from pushgate.store.idempotency import Key
from pushgate.store.models import Partner
from pushgate.store.store import Store
from pushgate.targeting import idempotency
from pushgate.targeting.errors import ApiError
from pushgate.targeting.users import UserDataError, parse_identifiers, validate_users
from pushgate.targeting.validate import parse_json
from pushgate.wire.users import Deleted, UpsertCount, UpsertData, UpsertFailures, UpsertResult

FORBIDDEN = UserDataError(403, "invalid partner name or request token: forbidden")
TOO_MANY_REQUESTS = UserDataError(429, "rejected: too many requests")
BAD_JSON = UserDataError(400, "request body is not valid JSON: bad request")
NO_IDENTIFIERS = UserDataError(400, "identifiers must be defined: bad request")
NO_SUCH_USER = UserDataError(404, "no such user for these identifiers: no data")


def too_large() -> Response:
    return error_json(413, "request body can't exceed 5000000 bytes: request entity too large")


def _error(error: UserDataError) -> Response:
    headers = [(b"retry-after", str(error.retry_after).encode())] if error.status == 429 else []
    return error_json(error.status, error.error, headers=headers)


class UserRoutes:
    def __init__(
        self,
        store: Store,
        partners: PartnerCache,
        rate: RateLimiter,
        idempotency_seconds: float,  # Settings.idempotency_hours, in seconds
    ) -> None:
        self.store = store
        self.partners = partners
        self.rate = rate
        self.idempotency_seconds = idempotency_seconds

    async def _partner(self, request: Request) -> Partner:
        name = request.header(b"x-partner-name")
        token = request.header(b"x-request-token")
        try:
            partner = await self.partners.admit(
                "request_token", token, request.client_ip, allow_list=False
            )
        except ApiError as error:  # the client is over its allowance of bad keys
            raise UserDataError(429, TOO_MANY_REQUESTS.error, error.retry_after or 1) from None
        if partner is None or name is None or name.lower() != partner.name.lower():
            raise FORBIDDEN
        if await self.rate.take(f"user:{partner.id}", partner.rate_limit):
            raise TOO_MANY_REQUESTS
        return partner

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return parse_json(request.body)
        except ApiError:
            raise BAD_JSON from None

    def handler(self, action: Any) -> Handler:
        async def handle(request: Request) -> Response:
            try:
                partner = await self._partner(request)
                return await action(partner, self._json(request))  # type: ignore[no-any-return]
            except UserDataError as error:
                return _error(error)

        return handle

    async def upsert(self, partner: Partner, body: Any, key: Key | None = None) -> Response:
        users, problems, failed = validate_users(body)
        # `fail` is `{}` when every user was valid: its fields are left out at their defaults.
        fail = UpsertFailures(count=failed, errors=problems) if failed else UpsertFailures()
        data = UpsertData(successful=UpsertCount(count=len(users)), fail=fail)
        answer = msgspec.json.encode(UpsertResult(data=data))
        if users or key is not None:
            kept = None if key is None else (200, answer)
            await self.store.upsert_users(partner.id, users, time.time(), key, kept)
        return Response(200, answer)

    async def upsert_request(self, request: Request) -> Response:
        """POST /api/user/v1/upsert, with or without an Idempotency-Key (contract.md)."""
        try:
            value = idempotency.parse_key(request.header(b"idempotency-key"))
        except ApiError as error:
            return error_response(error)
        try:
            partner = await self._partner(request)
            body = self._json(request)
            if value is None:
                return await self.upsert(partner, body)
        except UserDataError as error:
            return _error(error)
        key = Key(value, self.idempotency_seconds)
        claimed = await self.store.claim_key(partner.id, key, idempotency.body_hash(request.body))
        if claimed.verdict == "replay":
            return Response(claimed.status, claimed.body, headers=REPLAYED)
        if (refused := idempotency.refusal(claimed.verdict)) is not None:
            return error_response(refused)
        try:
            return await self.upsert(partner, body, key)
        except BaseException as error:
            # Nothing was kept: the key may be used again (a 4xx is not stored).
            with contextlib.suppress(Exception):
                await self.store.release_key(partner.id, key)
            if isinstance(error, UserDataError):
                return _error(error)
            raise

    def _who(self, body: Any) -> tuple[Any, str | None]:
        if not isinstance(body, dict):
            raise NO_IDENTIFIERS
        problems: dict[str, list[str]] = {}
        ids = parse_identifiers(body.get("identifiers"), "identifiers", problems)
        insider_id = (
            body.get("insider_id") if isinstance(body.get("insider_id"), str) else ids.insider_id
        )
        if problems or (not ids.identifiers and not insider_id):
            raise NO_IDENTIFIERS
        return ids.identifiers, insider_id

    async def profile(self, partner: Partner, body: Any) -> Response:
        identifiers, insider_id = self._who(body)
        profile = await self.store.read_profile(partner.id, identifiers, insider_id)
        if profile is None:
            raise NO_SUCH_USER
        return json_response(200, profile)

    async def delete(self, partner: Partner, body: Any) -> Response:
        identifiers, insider_id = self._who(body)
        await self.store.delete_profile(partner.id, identifiers, insider_id)
        return json_response(200, Deleted())
