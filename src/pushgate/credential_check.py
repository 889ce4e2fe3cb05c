"""Is an uploaded provider credential usable? (contract.md "Credentials")

A credential is validated when it parses and a provider token can be obtained:
an ES256 JWT signed with the .p8 key (APNs has no token endpoint), a .p12 whose
key and certificate match, valid now, for the bundle id its UID names (APNs
certificate auth has no token either), or an OAuth access token from the service
account's `token_uri` (FCM) or the HMS token endpoint.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

from pushgate.providers import apns, fcm, hms
from pushgate.providers.apns_certificate import check_identity, client_context, load_p12
from pushgate.providers.errors import CredentialError
from pushgate.providers.oauth import (
    FcmTokenSource,
    HmsTokenSource,
    TokenFetchError,
    token_http_client,
)
from pushgate.providers.senders import token_verify
from pushgate.store import credentials as creds


@dataclass(frozen=True, slots=True)
class Checked:
    platform: str
    record: dict[str, Any]
    ref: str | None
    validated: bool
    detail: str | None


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(f"'{name}' is required")
    return value.strip()


def check_apns(record: dict[str, Any]) -> Checked:
    try:
        bundle_id = _text(record, "bundle_id")
        if "p12" in record:
            password = record.get("password") or ""
            if not isinstance(password, str):
                raise CredentialError("'password' must be a string")
            identity = load_p12(_text(record, "p12"), password)
            check_identity(identity, bundle_id)
            client_context(identity, None)  # OpenSSL takes the key as a TLS identity
            stored = {
                "type": "apns_certificate",
                "p12": "".join(_text(record, "p12").split()),
                "password": password,
                "bundle_id": bundle_id,
                # Public: what the APNs emulator trusts, without opening the .p12.
                "certificate": identity.certificate_pem(),
            }
            return Checked("ios", stored, creds.apns_cert_ref(identity.fingerprint), True, None)
        key_id, team_id = _text(record, "key_id"), _text(record, "team_id")
        private_key = _text(record, "private_key")
        apns.ApnsTokenSigner(private_key, key_id, team_id).token(time.time())
    except (CredentialError, ValueError, TypeError) as exc:
        return Checked("ios", record, None, False, f"unusable APNs credential: {exc}")
    stored = {
        "type": "apns_token",
        "key_id": key_id,
        "team_id": team_id,
        "bundle_id": bundle_id,
        "private_key": private_key,
    }
    return Checked("ios", stored, creds.apns_ref(key_id, team_id), True, None)


def check_firebase(record: dict[str, Any]) -> Checked:
    try:
        account = fcm.ServiceAccount.parse(record)
    except (CredentialError, ValueError, TypeError) as exc:
        return Checked("android", record, None, False, f"unusable service account: {exc}")
    return Checked(
        "android", record, creds.fcm_ref(account.client_email, account.private_key_id), True, None
    )


def check_huawei(record: dict[str, Any]) -> Checked:
    try:
        credential = hms.HmsCredential.parse(record)
    except (CredentialError, ValueError, TypeError) as exc:
        return Checked("huawei", record, None, False, f"unusable HMS credential: {exc}")
    stored = {
        "type": "huawei",
        "app_id": credential.app_id,
        "client_id": credential.client_id,
        "client_secret": credential.client_secret,
    }
    if credential.category is not None:
        stored["category"] = credential.category
    if credential.importance is not None:
        stored["importance"] = credential.importance
    return Checked("huawei", stored, creds.hms_ref(credential.client_id), True, None)


def check(provider: str, record: dict[str, Any]) -> Checked:
    """Parse and normalise an upload (no I/O); `validated` is False if it is unusable."""
    if provider == "apns":
        return check_apns(record)
    if provider == "firebase":
        return check_firebase(record)
    return check_huawei(record)


async def obtain_token(
    checked: Checked, hms_token_url: str, context: ssl.SSLContext | None
) -> str | None:
    """Ask the provider for an access token with a parsed credential; why it failed, or None.

    The credential must already be stored: the emulators find the keys to check
    signatures against in the database.
    """
    async with token_http_client(token_verify(context)) as http:
        try:
            if checked.platform == "android":
                await FcmTokenSource(fcm.ServiceAccount.parse(checked.record), http).get()
            elif checked.platform == "huawei":
                record = checked.record
                await HmsTokenSource(
                    record["client_id"], record["client_secret"], http, token_url=hms_token_url
                ).get()
        except TokenFetchError as exc:
            return f"no access token from the provider: {exc}"
    return None
