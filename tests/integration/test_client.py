"""pushgate.client against a running server: every endpoint, both clients (sync, and asyncio
through `Blocking`), on both backends.

Requests are counted and timed with httpx event hooks on the client's own httpx client
(`Recorder`), so chunking and retries are observed on the wire, against the real server.
Sources: targeted-push-api.txt (limits), insider-ecosystem.md, contract.md, docs/decisions.md,
docs/statistics.md, docs/client.md (whose examples tests/e2e/test_docs_examples.py runs).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest

from pushgate.client import (
    NO_RETRY,
    ApnsTokenKey,
    AsyncPushgateClient,
    BadApiKey,
    BadRequestToken,
    BadSdkKey,
    CampaignCancelled,
    CampaignNotFound,
    Credentials,
    Device,
    FirebaseServiceAccount,
    HuaweiCredential,
    IdempotencyKeyReused,
    InvalidCertificate,
    InvalidNotifications,
    InvalidParameter,
    InvalidRequest,
    InvalidSendAt,
    InvalidSession,
    IosOptions,
    NegativeInteger,
    NotFound,
    Notification,
    Overloaded,
    PushEvent,
    PushgateClient,
    RateLimited,
    RequestTooLarge,
    RetryPolicy,
    TargetedPushResponse,
    UserEvent,
    UserNotFound,
    UserRecord,
)
from pushgate.emulators.credentials import (
    InMemoryCredentials,
    generate_apns_credential,
    generate_fcm_service_account,
)
from tests.support.pushes import jobs, row_counts
from tests.support.server import Partner, Server, new_backend_env

PUSH_PATH = "/api/v2/notification/user"
SETTINGS_DELAY = 2.5  # the server's partner cache (docs/decisions.md)


# ---- the clients, and what they send ----


@dataclass
class Sent:
    at: float
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answered:
    at: float
    status: int
    retry_after: str | None


@dataclass
class Recorder:
    """Every request the client sends and every answer it gets, with monotonic times."""

    sent: list[Sent] = field(default_factory=list)
    answered: list[Answered] = field(default_factory=list)

    def request(self, request: httpx.Request) -> None:
        self.sent.append(
            Sent(
                time.monotonic(),
                request.method,
                request.url.path,
                request.content,
                dict(request.headers),
            )
        )

    def response(self, response: httpx.Response) -> None:
        retry_after = response.headers.get("retry-after")
        self.answered.append(Answered(time.monotonic(), response.status_code, retry_after))

    async def arequest(self, request: httpx.Request) -> None:
        self.request(request)

    async def aresponse(self, response: httpx.Response) -> None:
        self.response(response)

    def pushes(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(s.body) for s in self.sent if s.path == PUSH_PATH]


class Blocking:
    """The async client's methods, each run to completion on one event loop, so that every
    test below runs on both clients."""

    def __init__(self, client: AsyncPushgateClient, runner: asyncio.Runner) -> None:
        self._client = client
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        return run


Connect = Callable[..., tuple[Any, Recorder]]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest, server: Server) -> Iterator[Connect]:
    """`connect(partner, retry=..., base_url=..., **secrets)`: a client with the partner's
    secrets (overridden by `secrets`), and its Recorder."""
    runner = asyncio.Runner()
    closers: list[Callable[[], Any]] = []

    def make(
        partner: Partner | None = None,
        *,
        retry: RetryPolicy | None = None,
        base_url: str | None = None,
        **secrets: str,
    ) -> tuple[Any, Recorder]:
        given: dict[str, str | None] = {
            "api_key": partner.api_key if partner else None,
            "sdk_key": partner.sdk_key if partner else None,
            "partner_name": partner.name if partner else None,
            "request_token": partner.request_token if partner else None,
            **secrets,
        }
        keys = Credentials(**given)
        recorder = Recorder()
        url = base_url or server.base_url
        if request.param == "sync":
            hooks: dict[str, list[Any]] = {
                "request": [recorder.request],
                "response": [recorder.response],
            }
            http = httpx.Client(timeout=30, event_hooks=hooks)
            closers.append(http.close)
            client = PushgateClient(
                url,
                api_key=keys.api_key,
                sdk_key=keys.sdk_key,
                partner_name=keys.partner_name,
                request_token=keys.request_token,
                retry=retry,
                http=http,
            )
            return client, recorder
        ahooks: dict[str, list[Any]] = {
            "request": [recorder.arequest],
            "response": [recorder.aresponse],
        }
        ahttp = httpx.AsyncClient(timeout=30, event_hooks=ahooks)
        closers.append(lambda: runner.run(ahttp.aclose()))
        aclient = AsyncPushgateClient(
            url,
            api_key=keys.api_key,
            sdk_key=keys.sdk_key,
            partner_name=keys.partner_name,
            request_token=keys.request_token,
            retry=retry,
            http=ahttp,
        )
        return Blocking(aclient, runner), recorder

    yield make
    for close in closers:
        close()
    runner.close()


def note(uuid: str, camp_id: int = 1, **extra: Any) -> Notification:
    return Notification(
        identifiers={"uuid": uuid},
        camp_id=camp_id,
        camp_name="client campaign",
        title="A title",
        message="A message",
        image_url="",
        **extra,
    )


def register(client: Any, uuid: str, **device: Any) -> tuple[str, str]:
    """A device for the user, as the SDK registers it: (insider_id, token)."""
    token = os.urandom(32).hex()
    fields: dict[str, Any] = {"environment": "production", "push_optin": True, **device}
    result = client.session(
        Device(platform="ios", device_token=token, **fields), identifiers={"uuid": uuid}
    )
    return str(result.insider_id), token


def wait_for(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# ---- monitoring ----


def test_health_and_readiness(connect: Connect) -> None:
    client, _ = connect()
    assert client.health().status == "ok"
    ready = client.ready()
    assert (ready.status, ready.failing, ready.ready) == ("ready", [], True)


# ---- the Targeted Push API and the SDK session ----


def test_a_registered_device_is_sent_to_and_an_unknown_user_is_reported(
    connect: Connect, partner: Partner
) -> None:
    client, _ = connect(partner)
    insider_id, token = register(client, "ada", app_version="4.0")
    answer = client.send([note("ada"), note("nobody")])
    assert answer == TargetedPushResponse(
        successes=[{"INSIDER.device_token": token}],
        errors={"NoUserFound": [{"uuid": "nobody"}]},
    )
    attributes = ["INSIDER.insider_id", "INSIDER.app_version", "INSIDER.device_token"]
    answer = client.send([note("ada", 2, check_optin=True)], report_attributes=attributes)
    assert answer.successes == [
        {
            "INSIDER.insider_id": insider_id,
            "INSIDER.app_version": "4.0",
            "INSIDER.device_token": token,
        }
    ]
    assert (answer.errors, answer.optin_delivery_count) == ({}, 1)


def test_a_session_keeps_attributes_and_identifiers(connect: Connect, partner: Partner) -> None:
    client, _ = connect(partner)
    token = os.urandom(32).hex()
    session = client.session(
        Device(platform="android", device_token=token, push_optin=True, model="Pixel"),
        identifiers={"email": "grace@example.com"},
        attributes={"name": "Grace"},
    )
    profile = client.profile({"email": "grace@example.com"})
    assert profile.insider_id == session.insider_id
    assert profile.attributes["INSIDER.name"] == "Grace"
    [device] = profile.devices
    assert device["INSIDER.device_token"] == token
    assert device["INSIDER.model"] == "Pixel"


def test_submit_is_accepted_and_then_queued(connect: Connect, partner: Partner) -> None:
    client, recorder = connect(partner)
    register(client, "ada")
    accepted = client.submit([note("ada", 5)])
    assert accepted.message == "Async request accepted"
    assert recorder.pushes()[-1]["async"] is True

    def queued() -> int:
        try:
            return int(client.campaign_report(5).funnel.queued)
        except CampaignNotFound:
            return 0

    assert wait_for(queued) == 1


# ---- chunking ----


def test_45_notifications_are_sent_as_3_requests_and_answered_as_one(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    tokens = [register(client, f"u{i}")[1] for i in range(40)]
    notes = [note(f"u{i}", check_optin=True) for i in range(40)]
    notes += [note(f"unknown{i}") for i in range(5)]
    answer = client.send(notes)
    assert [len(body["notifications"]) for body in recorder.pushes()] == [20, 20, 5]
    assert answer.successes == [{"INSIDER.device_token": t} for t in tokens]
    assert answer.errors == {"NoUserFound": [{"uuid": f"unknown{i}"} for i in range(5)]}
    assert answer.optin_delivery_count == 40


def test_requests_hold_at_most_50_identifiers(connect: Connect, partner: Partner) -> None:
    client, recorder = connect(partner)
    identifiers = [
        {"uuid": f"x{i}", "custom": {f"crm{j}": f"{i}-{j}" for j in range(4)}} for i in range(20)
    ]
    notes = [msgspec.structs.replace(note("_"), identifiers=ids) for ids in identifiers]
    answer = client.send(notes)
    bodies = recorder.pushes()
    assert [len(body["notifications"]) for body in bodies] == [10, 10]  # 5 identifiers each
    assert answer == TargetedPushResponse(successes=[], errors={"NoUserFound": identifiers})


def test_a_send_the_server_would_refuse_halfway_sends_nothing(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    notes = [note(f"u{i}") for i in range(25)]
    notes[22] = note("u22", camp_id=0)
    with pytest.raises(NegativeInteger) as caught:
        client.send(notes)
    assert (caught.value.status, caught.value.code) == (400, "negative_integer")
    assert caught.value.not_sent == tuple(notes)
    assert caught.value.completed == TargetedPushResponse(successes=[], errors={})
    assert recorder.sent == []


# ---- errors ----


def test_push_errors_are_typed_and_never_retried(connect: Connect, partner: Partner) -> None:
    wrong, recorder = connect(api_key="pgk_wrong", retry=RetryPolicy(attempts=5))
    with pytest.raises(BadApiKey) as bad_key:
        wrong.send([note("ada")])
    assert (bad_key.value.status, bad_key.value.code) == (401, "bad_api_key")
    assert len(recorder.sent) == 1

    client, _ = connect(partner)
    with pytest.raises(InvalidNotifications) as empty:
        client.send([])
    assert (empty.value.status, empty.value.code, empty.value.message) == (
        400,
        "invalid_notifications",
        "'notifications' is empty, add some notification objects",
    )
    with pytest.raises(RequestTooLarge) as too_large:
        client.send([msgspec.structs.replace(note("ada"), message="x" * 5_000_001)])
    assert (too_large.value.status, too_large.value.code) == (413, "request_too_large")
    assert too_large.value.not_sent[0].message.startswith("xxx")


def test_user_data_errors_are_typed(connect: Connect, partner: Partner) -> None:
    wrong, _ = connect(partner, request_token="pgt_wrong")
    with pytest.raises(BadRequestToken) as forbidden:
        wrong.profile({"uuid": "ada"})
    assert forbidden.value.status == 403
    assert forbidden.value.code == "invalid partner name or request token: forbidden"
    client, _ = connect(partner)
    with pytest.raises(UserNotFound) as missing:
        client.profile({"uuid": "nobody"})
    assert (missing.value.status, missing.value.code) == (
        404,
        "no such user for these identifiers: no data",
    )
    big = UserRecord(identifiers={"uuid": "ada"}, attributes={"bio": "x" * 5_000_001})
    with pytest.raises(RequestTooLarge) as too_large:
        client.upsert([big])
    assert too_large.value.status == 413
    with pytest.raises(InvalidRequest) as too_many:
        client.upsert([UserRecord(identifiers={"uuid": "a"}, attributes={})] * 1001)
    assert too_many.value.code == "users can't be more than 1000: bad request"
    with pytest.raises(ValueError):
        connect(api_key=partner.api_key)[0].profile({"uuid": "ada"})  # no request token


def test_statistics_errors_are_typed(connect: Connect, partner: Partner) -> None:
    wrong, _ = connect(api_key="pgk_wrong")
    with pytest.raises(BadApiKey) as stats:
        wrong.statistics()
    assert (stats.value.status, stats.value.code) == (401, "Bad Api Key.")
    with pytest.raises(BadApiKey) as inbox:
        wrong.message_center({"Uuid": "ada"})
    assert (inbox.value.status, inbox.value.code) == (401, "bad api key")
    with pytest.raises(BadApiKey) as listing:
        wrong.campaigns()
    assert (listing.value.status, listing.value.code) == (401, "invalid_api_key")
    client, _ = connect(partner)
    with pytest.raises(CampaignNotFound) as unknown:
        client.campaign_report(987654)
    assert (unknown.value.status, unknown.value.code) == (404, "campaign_not_found")
    with pytest.raises(InvalidParameter) as page:
        client.campaigns(per_page=0)
    assert page.value.status == 400
    with pytest.raises(InvalidRequest) as limit:
        client.message_center({"Uuid": "ada"}, limit=101)
    assert limit.value.code == "limit should be between 1 and 100."


def test_sdk_and_credential_errors_are_typed(connect: Connect, partner: Partner) -> None:
    wrong, _ = connect(sdk_key="pgs_wrong", api_key="pgk_wrong")
    with pytest.raises(BadSdkKey) as sdk:
        wrong.session(Device(platform="ios", device_token="t"))
    assert (sdk.value.status, sdk.value.code) == (401, "bad_sdk_key")
    with pytest.raises(BadApiKey) as upload:
        wrong.upload_huawei(HuaweiCredential(app_id="1", client_id="1", client_secret="s"))
    assert (upload.value.status, upload.value.code) == (403, "Invalid api key")
    client, _ = connect(partner)
    with pytest.raises(InvalidSession):
        client.session(Device(platform="blackberry", device_token="t"))
    with pytest.raises(UserNotFound) as events:
        client.events("no-such-insider", [PushEvent(event_name="push_delivered", camp_id=1)])
    assert (events.value.status, events.value.code) == (404, "user_not_found")
    with pytest.raises(InvalidCertificate) as unusable:
        client.upload_huawei(HuaweiCredential(app_id="1", client_id="", client_secret=""))
    assert (unusable.value.status, unusable.value.code) == (406, "invalid_certificate")


# ---- user data ----


def test_upsert_profile_and_delete(connect: Connect, partner: Partner) -> None:
    client, _ = connect(partner)
    ada = UserRecord(
        identifiers={"email": "ada@example.com", "uuid": "ada-1", "custom": {"crm": "c-1"}},
        attributes={"name": "Ada", "custom": {"tier": "gold"}},
        events=[
            UserEvent(
                event_name="purchase",
                timestamp=datetime.datetime(2026, 1, 10, 21, 35, tzinfo=datetime.UTC),
                event_params={"custom": {"amount": 3}},
            )
        ],
    )
    bad = UserRecord(identifiers={"email": "not-an-email"}, attributes={"name": "x"})
    result = client.upsert([ada, bad])
    assert result.data.successful.count == 1
    assert result.data.fail.count == 1
    assert list(result.data.fail.errors) == ["users.1.identifiers.email.regexp(^.+@.+\\..+$)"]
    profile = client.profile({"email": "ada@example.com"})
    assert profile.identifiers == {
        "email": "ada@example.com",
        "uuid": "ada-1",
        "custom": {"crm": "c-1"},
    }
    assert (profile.attributes["INSIDER.name"], profile.attributes["tier"]) == ("Ada", "gold")
    assert profile.event_count == 1
    assert client.profile(insider_id=profile.insider_id).insider_id == profile.insider_id
    assert client.delete_user({"uuid": "ada-1"}) is None
    with pytest.raises(UserNotFound):
        client.profile({"email": "ada@example.com"})
    assert client.delete_user({"uuid": "ada-1"}) is None  # erasure is idempotent


# ---- statistics, Message Center, app events ----


def test_statistics_message_center_events_and_reports(connect: Connect, partner: Partner) -> None:
    client, _ = connect(partner)
    insider_id, token = register(client, "ada")
    link = {"ins_dl_internal": "https://example.com/cart"}
    sent = client.send([note("ada", 7, ios=IosOptions(deep_link=link))])
    assert sent.successes == [{"INSIDER.device_token": token}]

    inbox = wait_for(lambda: client.message_center({"Uuid": "ada"}))
    [entry] = inbox
    assert (entry.camp_id, entry.camp_type, entry.title, entry.deep_links) == (
        7,
        "Single Push",
        "A title",
        link,
    )
    assert entry.image_url is None  # the push had none
    assert entry.created_at.tzinfo is not None
    assert client.message_center({"Uuid": "ada"}, end_date=0) == []

    events = [
        PushEvent(event_name="push_delivered", camp_id=7),
        PushEvent(
            event_name="push_session",
            camp_id=7,
            timestamp=datetime.datetime.now(datetime.UTC),
        ),
        PushEvent(event_name="push_session", camp_id=999),
    ]
    first = client.events(insider_id, events)
    assert (first.accepted, first.duplicates, first.unknown_campaigns) == (2, 0, 1)
    again = client.events(insider_id, events[:2])
    assert (again.accepted, again.duplicates) == (0, 2)

    stats = client.statistics()
    [campaign] = [c for c in stats.campaigns if c.id == 7]
    assert (campaign.delivery_count, campaign.session_count, campaign.open_rate) == (
        1,
        1,
        "% 100.00",
    )
    assert campaign.deep_link == link
    assert stats.total_camp_count == len(stats.campaigns)

    # An offset in the query string: a `+` must reach the server as %2B (docs/statistics.md).
    now_east = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2)))
    page = client.campaigns(start=now_east - datetime.timedelta(days=1), per_page=10)
    assert (page.page, page.per_page, page.total) == (1, 10, 1)
    assert [c.camp_id for c in page.campaigns] == [7]
    assert client.campaigns(end=datetime.date(2000, 1, 1)).total == 0

    report = client.campaign_report(7)
    assert (report.funnel.requested, report.funnel.delivered, report.funnel.opened) == (1, 1, 1)
    assert set(report.platforms) == {"ios", "android", "huawei"}
    assert report.platforms["ios"].queued == 1
    assert report.rates.open_rate == 100.0
    assert sum(point.requested for point in report.series) == 1


# ---- credentials ----


def test_credential_uploads(connect: Connect, partner: Partner, server: Server) -> None:
    client, _ = connect(partner)
    huawei = HuaweiCredential(app_id="100200300", client_id="100200300", client_secret="s3cret")
    assert msgspec.to_builtins(client.upload_huawei(huawei)) == {
        "platform": "huawei",
        "validated": True,
    }
    apns = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")
    result = client.upload_apns(ApnsTokenKey(**apns.as_upload()))
    assert (result.platform, result.validated) == ("ios", True)
    token_url = server.client.get("/emulator/v1/info").json()["fcm"]["token_url"]
    account = generate_fcm_service_account(InMemoryCredentials(), token_uri=token_url)
    for given in (
        account,
        msgspec.convert(account, FirebaseServiceAccount),
        msgspec.json.encode(account),
    ):
        result = client.upload_firebase(given)
        assert (result.platform, result.validated) == ("android", True)


# ---- retries ----


def exhaust_rate_limit(partner: Partner, per_minute: int) -> None:
    """Lower the partner's limit and use its whole burst: the next push is answered 429."""
    partner.update("--rate-limit", str(per_minute))
    time.sleep(SETTINGS_DELAY)
    for _ in range(per_minute * 5):  # every authenticated request counts, valid or not
        if partner.push({"notifications": []}).status_code == 429:
            return
    raise AssertionError("the rate limit never answered 429")


def test_429_is_retried_after_its_retry_after(connect: Connect, partner: Partner) -> None:
    exhaust_rate_limit(partner, 20)  # a request every 3 s once the burst is used
    once, once_seen = connect(partner, retry=NO_RETRY)
    with pytest.raises(RateLimited) as limited:
        once.send([note("nobody")])
    assert (limited.value.status, limited.value.code) == (429, "too_many_requests")
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    assert len(once_seen.sent) == 1

    client, recorder = connect(partner, retry=RetryPolicy(attempts=5, max_wait=30))
    answer = client.send([note("nobody")])
    assert answer.errors == {"NoUserFound": [{"uuid": "nobody"}]}
    statuses = [a.status for a in recorder.answered]
    assert statuses[0] == 429 and statuses[-1] == 200
    assert set(statuses[:-1]) == {429}
    for answered, following in zip(recorder.answered, recorder.sent[1:], strict=False):
        assert answered.retry_after is not None
        assert following.at - answered.at >= float(answered.retry_after)


def test_a_wait_longer_than_max_wait_is_not_started(connect: Connect, partner: Partner) -> None:
    exhaust_rate_limit(partner, 20)
    client, recorder = connect(partner, retry=RetryPolicy(attempts=5, max_wait=0.5))
    started = time.monotonic()
    with pytest.raises(RateLimited):
        client.send([note("nobody")])
    assert len(recorder.sent) == 1
    assert time.monotonic() - started < 1  # gave up at once


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Server]:
    """A server that sheds every request (no request may be in progress at once)."""
    srv = Server(
        tmp_path_factory.mktemp("overloaded") / "data",
        backend_env=new_backend_env(backend),
        env={"PUSHGATE_MAX_REQUESTS": "0"},
    )
    srv.start()
    yield srv
    srv.stop()


def test_503_overloaded_is_retried_within_the_policy(connect: Connect, overloaded: Server) -> None:
    client, recorder = connect(
        base_url=overloaded.base_url, api_key="pgk_any", retry=RetryPolicy(attempts=3)
    )
    with pytest.raises(Overloaded) as caught:
        client.statistics()
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503,
        "overloaded",
        1,
    )
    assert [a.status for a in recorder.answered] == [503, 503, 503]
    for answered, following in zip(recorder.answered, recorder.sent[1:], strict=False):
        assert following.at - answered.at >= 1
    assert client.health().status == "ok"  # never shed


async def test_the_async_client_waits_without_blocking_the_loop(overloaded: Server) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    retry = RetryPolicy(attempts=2)
    async with AsyncPushgateClient(overloaded.base_url, api_key="k", retry=retry) as client:
        with pytest.raises(Overloaded):
            await client.statistics()
    ticker.cancel()
    assert ticks >= 10  # it ran during the 1 s wait


# ---- idempotency keys and webhooks (docs/api.md) ----


def test_a_send_made_again_with_its_idempotency_key_sends_nothing_twice(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    register(client, "twice")
    first = client.send([note("twice")], idempotency_key="order-7")
    again = client.send([note("twice")], idempotency_key="order-7")
    assert again == first
    assert [s.headers["idempotency-key"] for s in recorder.sent if s.path == PUSH_PATH] == [
        "order-7",
        "order-7",
    ]
    assert row_counts(partner)["jobs"] == 1
    with pytest.raises(IdempotencyKeyReused):
        client.send([note("twice", camp_id=2)], idempotency_key="order-7")


def test_webhook_calls(connect: Connect, partner: Partner) -> None:
    client, _ = connect(partner)
    created = client.set_webhook("https://8.8.8.8/hook", events=["push.failed"])
    assert created.secret is not None and created.events == ["push.failed"]
    changed = client.set_webhook("https://8.8.4.4/hook", events=["push.failed"])
    assert changed.secret is None
    status = client.webhook()
    assert (status.url, status.enabled, status.last_error) == ("https://8.8.4.4/hook", True, None)
    assert client.rotate_webhook_secret().secret not in (None, created.secret)
    client.delete_webhook()
    with pytest.raises(NotFound):
        client.webhook()


# ---- send later, and cancel (docs/api.md, "Send later" and "Cancel a campaign") ----


def jobs_of(partner: Partner, token: str, camp_id: int) -> list[dict[str, Any]]:
    return [j for j in jobs(partner) if (j["token"], j["camp_id"]) == (token, camp_id)]


def test_send_at_as_an_aware_datetime_schedules_and_cancel_campaign_stops_it(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    _, token = register(client, "later")
    kolkata = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    when = (datetime.datetime.now(kolkata) + datetime.timedelta(hours=1)).replace(microsecond=0)
    answer = client.send([note("later", 31)], send_at=when)
    assert answer.successes == [{"INSIDER.device_token": token}]
    (body,) = recorder.pushes()
    assert body["notifications"][0]["send_at"] == when.isoformat()  # the offset as given
    [job] = jobs_of(partner, token, 31)
    assert job["due_at"] == pytest.approx(when.timestamp(), abs=1e-3)
    report = client.campaign_report(31)
    assert (report.funnel.scheduled, report.funnel.pending) == (1, 1)
    [listed] = [c for c in client.campaigns().campaigns if c.camp_id == 31]
    assert listed.scheduled == 1
    [today] = [c for c in client.statistics().campaigns if c.id == 31]
    assert today.scheduled_count == 1

    assert client.cancel_campaign(31) == CampaignCancelled(camp_id=31, cancelled=1)
    cancel = recorder.sent[-1]
    assert (cancel.method, cancel.path) == ("POST", "/api/v1/campaigns/31/cancel")
    funnel = client.campaign_report(31).funnel
    assert (funnel.scheduled, funnel.failed, funnel.cancelled, funnel.pending) == (0, 1, 1, 0)
    [listed] = [c for c in client.campaigns().campaigns if c.camp_id == 31]
    assert (listed.scheduled, listed.cancelled) == (0, 1)
    assert [j["state"] for j in jobs_of(partner, token, 31)] == ["failed"]
    assert client.cancel_campaign(31) == CampaignCancelled(camp_id=31, cancelled=0)


def test_cancelling_an_unknown_campaign_is_campaign_not_found(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner, retry=RetryPolicy(attempts=5))
    with pytest.raises(CampaignNotFound) as unknown:
        client.cancel_campaign(987654)
    assert (unknown.value.status, unknown.value.code) == (404, "campaign_not_found")
    assert len(recorder.sent) == 1
    wrong, _ = connect(api_key="pgk_wrong")
    with pytest.raises(BadApiKey):
        wrong.cancel_campaign(1)


def test_unix_seconds_local_time_and_ignore_quiet_hours_reach_the_server(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    _, at_seconds = register(client, "seconds")
    _, at_clock = register(client, "clock", timezone="Asia/Tokyo")
    send_at = int(time.time()) + 3600
    client.send([note("seconds", 32)], send_at=send_at)
    tokyo = datetime.datetime.now(ZoneInfo("Asia/Tokyo")) + datetime.timedelta(hours=2)
    local_time = f"{tokyo.hour:02d}:{tokyo.minute:02d}"
    own = note("seconds", 33, send_at=send_at)  # its own `send_at` stays: never both
    client.submit([note("clock", 33), own], local_time=local_time, ignore_quiet_hours=True)
    first, second = recorder.pushes()
    assert first["notifications"][0]["send_at"] == send_at
    assert [(n.get("send_at"), n.get("local_time")) for n in second["notifications"]] == [
        (None, local_time),
        (send_at, None),
    ]
    assert [n["ignore_quiet_hours"] for n in second["notifications"]] == [True, True]
    [job] = jobs_of(partner, at_seconds, 32)
    assert job["due_at"] == pytest.approx(send_at, abs=1e-3)
    # The async request is queued after its 202.
    assert wait_for(lambda: jobs_of(partner, at_clock, 33) and jobs_of(partner, at_seconds, 33))
    [clock], [own_job] = jobs_of(partner, at_clock, 33), jobs_of(partner, at_seconds, 33)
    due = tokyo.replace(second=0, microsecond=0).timestamp()
    assert clock["due_at"] == pytest.approx(due, abs=1e-3)  # 2 h ahead on the device's clock
    assert own_job["due_at"] == pytest.approx(send_at, abs=1e-3)


def test_timing_the_server_refuses_is_invalid_send_at_and_sends_nothing(
    connect: Connect, partner: Partner
) -> None:
    client, recorder = connect(partner)
    register(client, "refused")
    naive = datetime.datetime.now() + datetime.timedelta(hours=1)
    with pytest.raises(ValueError, match="naive"):
        client.send([note("refused", 34)], send_at=naive)
    with pytest.raises(ValueError, match="not both"):
        client.send([note("refused", 34)], send_at=time.time(), local_time="09:00")
    assert recorder.pushes() == []
    # One request: the server's answer.
    with pytest.raises(InvalidSendAt) as beyond:
        client.send([note("refused", 34)], send_at=time.time() + 31 * 86_400)
    assert (beyond.value.status, beyond.value.code) == (400, "invalid_send_at")
    assert "30 days" in beyond.value.message
    assert len(recorder.pushes()) == 1
    # Several requests: refused before the first, with the server's own error.
    notes = [note(f"u{i}", 34) for i in range(25)]
    with pytest.raises(InvalidSendAt) as bad_clock:
        client.send(notes, local_time="9:00")
    assert "HH:MM" in bad_clock.value.message
    assert [n.local_time for n in bad_clock.value.not_sent] == ["9:00"] * 25
    assert len(recorder.pushes()) == 1
    assert row_counts(partner)["jobs"] == 0
