"""`PushgateClient`: every public endpoint, blocking (httpx.Client)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from pushgate.client.calls import USER_AGENT, Call, Credentials, Endpoints, Instant
from pushgate.client.errors import ConnectionFailed, PushgateError
from pushgate.client.retry import RetryPolicy
from pushgate.client.sending import Sending, request_key
from pushgate.client.timing import SendAt, Timing
from pushgate.wire.certificates import (
    ApnsCertificate,
    ApnsTokenKey,
    CertificateResult,
    FirebaseServiceAccount,
    HuaweiCredential,
)
from pushgate.wire.health import HealthStatus, ReadyStatus
from pushgate.wire.push import AsyncAccepted, Notification, TargetedPushResponse
from pushgate.wire.sdk import Device, EventsResult, PushEvent, SessionResult
from pushgate.wire.stats import (
    CampaignCancelled,
    CampaignPage,
    CampaignReport,
    MessageCenterEntry,
    Statistics,
)
from pushgate.wire.users import Profile, UpsertResult, UserRecord
from pushgate.wire.webhooks import WebhookAnswer, WebhookStatus

T = TypeVar("T")


class PushgateClient:
    """A partner's client of one pushgate server (or another Insider-compatible host).

    Give the secrets of the endpoints you call: `api_key` (push, statistics, Message Center,
    campaigns, credentials), `sdk_key` (sessions, app events), `partner_name` and
    `request_token` (user data). `http` is an `httpx.Client` of your own (proxies, TLS, event
    hooks); it is used as is and not closed by `close()`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        sdk_key: str | None = None,
        partner_name: str | None = None,
        request_token: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoints = Endpoints(Credentials(api_key, sdk_key, partner_name, request_token))
        self.retry = retry or RetryPolicy()
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> PushgateClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        """Make one request, sending it again after a 429/503 as `self.retry` allows."""
        attempt, waited = 1, 0.0
        while True:
            try:
                response = self.http.request(
                    call.method,
                    self.base_url + call.path,
                    headers={"user-agent": USER_AGENT, **call.headers},
                    content=call.body,
                    params=call.params,
                )
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"{call.method} {call.path}: {exc!r}") from exc
            try:
                return call.result(response.status_code, response.headers, response.content)
            except PushgateError as error:
                delay = self.retry.delay(error, attempt, waited)
                if delay is None:
                    raise
            time.sleep(delay)
            waited += delay
            attempt += 1

    # ---- Targeted Push API ----

    def send(
        self,
        notifications: Sequence[Notification],
        *,
        report_attributes: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        send_at: SendAt | None = None,
        local_time: str | None = None,
        ignore_quiet_hours: bool = False,
    ) -> TargetedPushResponse:
        """Send (queue) now; the per-user answer of every notification, in requests of at most
        20 notifications and 50 identifiers, merged into one answer. With `idempotency_key`,
        the same call made again sends nothing twice (each request gets the key, and `.1`,
        `.2`... after the first when there are several).

        `send_at` (an aware datetime, Unix seconds or RFC 3339 text with an offset) or
        `local_time` ("HH:MM" on each user's clock) delivers later, and `ignore_quiet_hours`
        through the partner's quiet hours: for every notification that does not say so
        itself. A naive datetime, or both `send_at` and `local_time`, raise ValueError."""
        sending = Sending(
            self.endpoints.credentials.need("api_key"),
            notifications,
            report_attributes,
            False,
            Timing.of(send_at, local_time, ignore_quiet_hours),
        )
        for index, request in enumerate(sending.requests):
            key = request_key(idempotency_key, index)
            try:
                sending.merged.add(self.call(self.endpoints.push(request, key)))
            except PushgateError as error:
                sending.failed(index, error)
                raise
        return sending.merged.result()

    def submit(
        self,
        notifications: Sequence[Notification],
        *,
        report_attributes: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        send_at: SendAt | None = None,
        local_time: str | None = None,
        ignore_quiet_hours: bool = False,
    ) -> AsyncAccepted:
        """Send in the background (`"async": true`): validated and stored, then 202 without
        per-user results; in requests of at most 20 notifications and 50 identifiers. The
        timing arguments are `send`'s."""
        sending = Sending(
            self.endpoints.credentials.need("api_key"),
            notifications,
            report_attributes,
            True,
            Timing.of(send_at, local_time, ignore_quiet_hours),
        )
        accepted: list[AsyncAccepted] = []
        for index, request in enumerate(sending.requests):
            try:
                key = request_key(idempotency_key, index)
                accepted.append(self.call(self.endpoints.push_async(request, key)))
            except PushgateError as error:
                sending.failed(index, error)
                raise
        return accepted[-1]  # every request has one

    # ---- the SDK's endpoints ----

    def session(
        self,
        device: Device,
        *,
        identifiers: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        insider_id: str | None = None,
    ) -> SessionResult:
        """Register or refresh a device, as the mobile SDK does."""
        return self.call(self.endpoints.session(device, identifiers, attributes, insider_id))

    def events(self, insider_id: str, events: Sequence[PushEvent]) -> EventsResult:
        """Report that pushes arrived (`push_delivered`) or were opened (`push_session`)."""
        return self.call(self.endpoints.events(insider_id, events))

    # ---- user data ----

    def upsert(
        self, users: Sequence[UserRecord], *, idempotency_key: str | None = None
    ) -> UpsertResult:
        return self.call(self.endpoints.upsert(users, idempotency_key))

    # ---- webhooks ----

    def set_webhook(self, url: str, *, events: Sequence[str] | None = None) -> WebhookAnswer:
        """Register the partner's webhook (or change its URL and events); `secret` is set only
        when it was created."""
        return self.call(self.endpoints.set_webhook(url, events))

    def webhook(self) -> WebhookStatus:
        return self.call(self.endpoints.webhook())

    def delete_webhook(self) -> None:
        self.call(self.endpoints.delete_webhook())

    def rotate_webhook_secret(self) -> WebhookAnswer:
        return self.call(self.endpoints.rotate_webhook_secret())

    def profile(
        self, identifiers: Mapping[str, Any] | None = None, *, insider_id: str | None = None
    ) -> Profile:
        return self.call(self.endpoints.profile(identifiers, insider_id))

    def delete_user(
        self, identifiers: Mapping[str, Any] | None = None, *, insider_id: str | None = None
    ) -> None:
        self.call(self.endpoints.delete_user(identifiers, insider_id))

    # ---- statistics ----

    def statistics(self) -> Statistics:
        return self.call(self.endpoints.statistics())

    def message_center(
        self,
        identifiers: Mapping[str, str],
        *,
        start_date: datetime.datetime | int | None = None,
        end_date: datetime.datetime | int | None = None,
        limit: int | None = None,
    ) -> list[MessageCenterEntry]:
        return self.call(self.endpoints.message_center(identifiers, start_date, end_date, limit))

    def campaigns(
        self,
        *,
        start: Instant | None = None,
        end: Instant | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> CampaignPage:
        return self.call(self.endpoints.campaigns(start, end, page, per_page))

    def campaign_report(self, camp_id: int) -> CampaignReport:
        return self.call(self.endpoints.campaign_report(camp_id))

    def cancel_campaign(self, camp_id: int) -> CampaignCancelled:
        """Stop every push of the campaign not yet handed to a provider (scheduled, or queued
        and not taken by a worker): they end failed `Cancelled`. `CampaignNotFound` for a
        campaign the partner never sent."""
        return self.call(self.endpoints.cancel_campaign(camp_id))

    # ---- credentials ----

    def upload_apns(self, credential: ApnsTokenKey | ApnsCertificate) -> CertificateResult:
        return self.call(self.endpoints.upload_apns(credential))

    def upload_firebase(
        self, account: FirebaseServiceAccount | Mapping[str, Any] | bytes | str
    ) -> CertificateResult:
        return self.call(self.endpoints.upload_firebase(account))

    def upload_huawei(self, credential: HuaweiCredential) -> CertificateResult:
        return self.call(self.endpoints.upload_huawei(credential))

    # ---- monitoring ----

    def health(self) -> HealthStatus:
        return self.call(self.endpoints.health())

    def ready(self) -> ReadyStatus:
        return self.call(self.endpoints.ready())
