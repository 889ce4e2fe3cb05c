"""POST /v1/settings/certificate/{apns,firebase,huawei} (contract.md "Credentials",
insider-ecosystem.md §5)."""

from __future__ import annotations

import msgspec


class ApnsTokenKey(msgspec.Struct, kw_only=True):
    """Token authentication: a .p8 key."""

    key_id: str
    team_id: str
    bundle_id: str
    private_key: str  # the .p8 PEM


class ApnsCertificate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Certificate authentication: a .p12."""

    p12: str  # base64
    bundle_id: str
    password: str | None = None


class FirebaseServiceAccount(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The service-account JSON as Google's console downloads it."""

    type: str  # "service_account"; required, so that it is never left out of the body
    project_id: str
    private_key_id: str
    private_key: str
    client_email: str
    token_uri: str  # where access tokens are obtained
    client_id: str | None = None
    auth_uri: str | None = None
    auth_provider_x509_cert_url: str | None = None
    client_x509_cert_url: str | None = None
    universe_domain: str | None = None


class HuaweiCredential(msgspec.Struct, kw_only=True, omit_defaults=True):
    app_id: str
    client_id: str
    client_secret: str
    # Huawei's message classification, put in every message that has none of its own:
    # `android.category` (IM, VOIP, SUBSCRIPTION, TRAVEL, HEALTH, WORK, ACCOUNT, EXPRESS,
    # FINANCE, DEVICE_REMINDER, MAIL, MARKETING) and `android.notification.importance`
    # (NORMAL or LOW). Anything else is refused with 406 `invalid_certificate`.
    category: str | None = None
    importance: str | None = None


class CertificateResult(msgspec.Struct, kw_only=True):
    """200: the credential is usable and in use (an unusable one is a 406
    `invalid_certificate`, and is kept but not used)."""

    platform: str  # ios | android | huawei
    validated: bool
