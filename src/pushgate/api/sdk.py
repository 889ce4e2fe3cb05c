"""The mobile SDK's endpoint: POST /api/sdk/v1/session (contract.md)."""

from __future__ import annotations

import time

from pushgate.api.http import Request, Response, json_response
from pushgate.api.push import error_response
from pushgate.auth import PartnerCache
from pushgate.store.store import Store
from pushgate.targeting.errors import ApiError
from pushgate.targeting.users import validate_session
from pushgate.targeting.validate import parse_json
from pushgate.wire.sdk import SessionResult

BAD_SDK_KEY = ApiError(401, "bad_sdk_key", "'X-SDK-KEY' is either empty or wrong")


class SdkRoutes:
    def __init__(self, store: Store, partners: PartnerCache) -> None:
        self.store = store
        self.partners = partners

    async def session(self, request: Request) -> Response:
        try:
            key = request.header(b"x-sdk-key")
            partner = await self.partners.admit("sdk_key", key, request.client_ip, allow_list=False)
            if partner is None:
                raise BAD_SDK_KEY
            session = validate_session(parse_json(request.body))
            insider_id = await self.store.sdk_session(partner.id, session, time.time())
        except ApiError as error:
            return error_response(error)
        return json_response(200, SessionResult(insider_id=insider_id))
