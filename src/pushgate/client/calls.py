"""Every endpoint as a `Call`: the HTTP request to make and how to read its answer.

No I/O here: the sync and async clients send the same `Call`s, each with its own transport
and sleep, so the two cannot drift apart.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from pushgate import __version__
from pushgate.client.encode import encode
from pushgate.client.errors import UnexpectedResponse, error_from_answer
from pushgate.wire.certificates import (
    ApnsCertificate,
    ApnsTokenKey,
    CertificateResult,
    FirebaseServiceAccount,
    HuaweiCredential,
)
from pushgate.wire.health import HealthStatus, ReadyStatus
from pushgate.wire.push import AsyncAccepted, TargetedPushRequest, TargetedPushResponse
from pushgate.wire.sdk import (
    Device,
    EventsRequest,
    EventsResult,
    PushEvent,
    SessionRequest,
    SessionResult,
)
from pushgate.wire.stats import (
    CampaignCancelled,
    CampaignPage,
    CampaignReport,
    MessageCenterEntry,
    MessageCenterQuery,
    Statistics,
    StatisticsRequest,
)
from pushgate.wire.users import Profile, ProfileQuery, UpsertRequest, UpsertResult, UserRecord
from pushgate.wire.webhooks import WebhookAnswer, WebhookRequest, WebhookStatus

T = TypeVar("T")
USER_AGENT = f"pushgate-client/{__version__}"
JSON = {"content-type": "application/json"}
# When a campaign list starts or ends: a datetime (naive means UTC, as the server reads it),
# a date (midnight UTC), epoch seconds, or the server's own text forms.
Instant = datetime.datetime | datetime.date | int | float | str


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[bytes], T]
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    params: Mapping[str, str] | None = None
    answers: Collection[int] = (200,)  # the statuses whose body is the result

    def result(self, status: int, headers: Mapping[str, str], body: bytes) -> T:
        """The decoded answer; raises the `PushgateError` an error answer stands for."""
        if status not in self.answers:
            raise error_from_answer(status, headers, body)
        try:
            return self.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UnexpectedResponse(
                f"{self.method} {self.path}: {exc}", status=status, code="unexpected_response"
            ) from exc


def _decoder(kind: Any) -> Callable[[bytes], Any]:
    return msgspec.json.Decoder(kind).decode


def _nothing(body: bytes) -> None:
    return None


_push_answer = _decoder(TargetedPushResponse)
_async_answer = _decoder(AsyncAccepted)
_health = _decoder(HealthStatus)
_ready = _decoder(ReadyStatus)
_session = _decoder(SessionResult)
_events = _decoder(EventsResult)
_upsert = _decoder(UpsertResult)
_profile = _decoder(Profile)
_statistics = _decoder(Statistics)
_inbox = _decoder(list[MessageCenterEntry])
_campaigns = _decoder(CampaignPage)
_report = _decoder(CampaignReport)
_cancelled = _decoder(CampaignCancelled)
_certificate = _decoder(CertificateResult)
_webhook = _decoder(WebhookStatus)
_webhook_answer = _decoder(WebhookAnswer)
WEBHOOK_PATH = "/api/v1/webhook"


def _keyed(headers: Mapping[str, str], idempotency_key: str | None) -> Mapping[str, str]:
    """The headers, with the request's Idempotency-Key when it has one (docs/api.md)."""
    return headers if idempotency_key is None else {**headers, "idempotency-key": idempotency_key}


@dataclass(frozen=True, slots=True)
class Credentials:
    """A partner's secrets (`pushgate partners create` prints them); each endpoint family
    needs only its own."""

    api_key: str | None = None
    sdk_key: str | None = None
    partner_name: str | None = None
    request_token: str | None = None

    def need(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise ValueError(f"this call needs the client's {name}")
        return str(value)


def instant_text(value: Instant) -> str:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def epoch_seconds(value: datetime.datetime | int) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return int(value.timestamp())
    return int(value)


class Endpoints:
    """The `Call` of each endpoint, with the credentials it needs."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def _api_key_header(self, name: str) -> dict[str, str]:
        return {name: self.credentials.need("api_key")}

    def _sdk_headers(self) -> dict[str, str]:
        return {**JSON, "x-sdk-key": self.credentials.need("sdk_key")}

    def _user_headers(self) -> dict[str, str]:
        return {
            **JSON,
            "x-partner-name": self.credentials.need("partner_name"),
            "x-request-token": self.credentials.need("request_token"),
        }

    # ---- Targeted Push API ----

    def push(
        self, request: TargetedPushRequest, idempotency_key: str | None = None
    ) -> Call[TargetedPushResponse]:
        headers = _keyed(JSON, idempotency_key)
        return Call("POST", "/api/v2/notification/user", _push_answer, headers, encode(request))

    def push_async(
        self, request: TargetedPushRequest, idempotency_key: str | None = None
    ) -> Call[AsyncAccepted]:
        return Call(
            "POST",
            "/api/v2/notification/user",
            _async_answer,
            _keyed(JSON, idempotency_key),
            encode(request),
            answers=(200, 202),
        )

    # ---- the SDK's endpoints ----

    def session(
        self,
        device: Device,
        identifiers: Mapping[str, Any] | None,
        attributes: Mapping[str, Any] | None,
        insider_id: str | None,
    ) -> Call[SessionResult]:
        body = SessionRequest(
            device=device,
            identifiers=None if identifiers is None else dict(identifiers),
            attributes=None if attributes is None else dict(attributes),
            insider_id=insider_id,
        )
        return Call("POST", "/api/sdk/v1/session", _session, self._sdk_headers(), encode(body))

    def events(self, insider_id: str, events: Sequence[PushEvent]) -> Call[EventsResult]:
        body = EventsRequest(insider_id=insider_id, events=list(events))
        return Call("POST", "/api/sdk/v1/events", _events, self._sdk_headers(), encode(body))

    # ---- user data ----

    def upsert(
        self, users: Sequence[UserRecord], idempotency_key: str | None = None
    ) -> Call[UpsertResult]:
        body = encode(UpsertRequest(users=list(users)))
        headers = _keyed(self._user_headers(), idempotency_key)
        return Call("POST", "/api/user/v1/upsert", _upsert, headers, body)

    def profile(
        self, identifiers: Mapping[str, Any] | None, insider_id: str | None
    ) -> Call[Profile]:
        body = encode(_who(identifiers, insider_id))
        return Call("POST", "/api/user/v1/profile", _profile, self._user_headers(), body)

    def delete_user(
        self, identifiers: Mapping[str, Any] | None, insider_id: str | None
    ) -> Call[None]:
        body = encode(_who(identifiers, insider_id))
        return Call("POST", "/api/user/v1/delete", _nothing, self._user_headers(), body)

    # ---- statistics ----

    def statistics(self) -> Call[Statistics]:
        body = encode(StatisticsRequest(api_key=self.credentials.need("api_key")))
        return Call("POST", "/api/v1/notification/get_statistics", _statistics, JSON, body)

    def message_center(
        self,
        identifiers: Mapping[str, str],
        start_date: datetime.datetime | int | None,
        end_date: datetime.datetime | int | None,
        limit: int | None,
    ) -> Call[list[MessageCenterEntry]]:
        query = MessageCenterQuery(
            identifiers=dict(identifiers),
            start_date=None if start_date is None else epoch_seconds(start_date),
            end_date=None if end_date is None else epoch_seconds(end_date),
            limit=limit,
        )
        headers = {**JSON, **self._api_key_header("x-insider-api-key")}
        return Call("POST", "/api/message_center/v1", _inbox, headers, encode(query))

    def campaigns(
        self,
        start: Instant | None,
        end: Instant | None,
        page: int | None,
        per_page: int | None,
    ) -> Call[CampaignPage]:
        given = {"from": start, "to": end, "page": page, "per_page": per_page}
        params = {k: instant_text(v) for k, v in given.items() if v is not None}
        headers = self._api_key_header("x-api-key")
        return Call("GET", "/api/v1/campaigns", _campaigns, headers, params=params)

    def campaign_report(self, camp_id: int) -> Call[CampaignReport]:
        path = f"/api/v1/campaigns/{int(camp_id)}/report"
        return Call("GET", path, _report, self._api_key_header("x-api-key"))

    def cancel_campaign(self, camp_id: int) -> Call[CampaignCancelled]:
        path = f"/api/v1/campaigns/{int(camp_id)}/cancel"
        return Call("POST", path, _cancelled, self._api_key_header("x-api-key"))

    # ---- credentials ----

    def certificate(self, provider: str, body: bytes) -> Call[CertificateResult]:
        headers = {**JSON, **self._api_key_header("x-api-key")}
        return Call("POST", f"/v1/settings/certificate/{provider}", _certificate, headers, body)

    def upload_apns(self, credential: ApnsTokenKey | ApnsCertificate) -> Call[CertificateResult]:
        return self.certificate("apns", encode(credential))

    def upload_firebase(
        self, account: FirebaseServiceAccount | Mapping[str, Any] | bytes | str
    ) -> Call[CertificateResult]:
        # The downloaded file may be passed as it is: its bytes are the body.
        if isinstance(account, str):
            body = account.encode()
        elif isinstance(account, bytes):
            body = account
        else:
            body = encode(account if isinstance(account, msgspec.Struct) else dict(account))
        return self.certificate("firebase", body)

    def upload_huawei(self, credential: HuaweiCredential) -> Call[CertificateResult]:
        return self.certificate("huawei", encode(credential))

    # ---- monitoring ----

    # ---- webhooks ----

    def set_webhook(self, url: str, events: Sequence[str] | None) -> Call[WebhookAnswer]:
        body = encode(WebhookRequest(url=url, events=None if events is None else list(events)))
        headers = {**JSON, **self._api_key_header("x-api-key")}
        return Call("PUT", WEBHOOK_PATH, _webhook_answer, headers, body)

    def webhook(self) -> Call[WebhookStatus]:
        return Call("GET", WEBHOOK_PATH, _webhook, self._api_key_header("x-api-key"))

    def delete_webhook(self) -> Call[None]:
        headers = self._api_key_header("x-api-key")
        return Call("DELETE", WEBHOOK_PATH, _nothing, headers, answers=(204,))

    def rotate_webhook_secret(self) -> Call[WebhookAnswer]:
        headers = self._api_key_header("x-api-key")
        return Call("POST", WEBHOOK_PATH + "/rotate-secret", _webhook_answer, headers)

    def health(self) -> Call[HealthStatus]:
        return Call("GET", "/healthz", _health, answers=(200, 503))

    def ready(self) -> Call[ReadyStatus]:
        return Call("GET", "/readyz", _ready, answers=(200, 503))


def _who(identifiers: Mapping[str, Any] | None, insider_id: str | None) -> ProfileQuery:
    if identifiers is None and insider_id is None:
        raise ValueError("give identifiers or an insider_id")
    return ProfileQuery(
        identifiers=None if identifiers is None else dict(identifiers), insider_id=insider_id
    )
