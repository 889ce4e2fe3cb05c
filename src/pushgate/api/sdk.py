"""The mobile SDK's endpoint: POST /api/sdk/v1/session (contract.md)."""

from __future__ import annotations

import time

from pushgate.api.http import Request, Response, json_response
from pushgate.store.models import Partner
from pushgate.store.store import Store
from pushgate.targeting.users import validate_session
from pushgate.targeting.validate import parse_json
from pushgate.wire.sdk import SessionResult


class SdkRoutes:
    """Behind `keyed.sdk_key`: the partner is the app's."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def session(self, partner: Partner, request: Request) -> Response:
        session = validate_session(parse_json(request.body))
        insider_id = await self.store.sdk_session(partner.id, session, time.time())
        return json_response(200, SessionResult(insider_id=insider_id))
