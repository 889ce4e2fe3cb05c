"""POST /v1/settings/certificate/{firebase,apns,huawei} (insider-ecosystem.md §5, contract.md)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import replace

from pushgate.api.http import Handler, Request, Response, error_json, json_response
from pushgate.api.push import error_response
from pushgate.auth import PartnerCache
from pushgate.credential_check import Checked, check, obtain_token
from pushgate.jobs import UPLOADED
from pushgate.store import credentials as creds
from pushgate.store.db import Db
from pushgate.store.store import Store
from pushgate.targeting.errors import ApiError
from pushgate.targeting.validate import parse_json
from pushgate.wire.certificates import CertificateResult


class CertificateRoutes:
    def __init__(
        self,
        store: Store,
        partners: PartnerCache,
        hms_token_url: Callable[[], str],
        ssl_context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.store = store
        self.partners = partners
        self.hms_token_url = hms_token_url
        self.ssl_context = ssl_context

    def handler(self, provider: str) -> Handler:
        async def handle(request: Request) -> Response:
            return await self._upload(request, provider)

        return handle

    async def _save(self, partner_id: int, checked: Checked) -> None:
        def unit(conn: Db) -> None:
            creds.put(
                conn,
                self.store.box,
                partner_id,
                checked.platform,
                UPLOADED,
                checked.record,
                ref=checked.ref,
                validated=checked.validated,
                detail=checked.detail,
            )

        await self.store.db.run(unit)

    async def _upload(self, request: Request, provider: str) -> Response:
        key = request.header(b"x-api-key")
        if not key:
            return error_json(400, "No api key provided")
        try:
            partner = await self.partners.admit("api_key", key, request.client_ip)
        except ApiError as error:  # the allow list, or too many bad keys
            return error_response(error)
        if partner is None:
            return error_json(403, "Invalid api key")
        try:
            record = parse_json(request.body)
        except ApiError as error:
            return error_json(error.status, error.code, error.message)
        if not isinstance(record, dict):
            return error_json(400, "invalid_type", "the credential must be a JSON object")
        # contract.md: an unusable credential is answered 406 and "kept but not used": it
        # replaces the platform's credential, and the platform stops sending until a usable
        # one is uploaded.
        checked = check(provider, record)
        if checked.validated and checked.platform != "ios":
            # Kept unvalidated until the provider hands out a token for it.
            await self._save(
                partner.id, replace(checked, validated=False, detail="being validated")
            )
            failure = await obtain_token(checked, self.hms_token_url(), self.ssl_context())
            if failure is not None:
                checked = replace(checked, validated=False, detail=failure)
        await self._save(partner.id, checked)
        if not checked.validated:
            return error_json(406, "invalid_certificate", checked.detail or "unusable credential")
        return json_response(200, CertificateResult(platform=checked.platform, validated=True))
