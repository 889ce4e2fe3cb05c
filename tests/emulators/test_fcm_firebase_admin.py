"""The FCM emulator driven by the real firebase-admin SDK (HTTP/1.1 through `requests`).

firebase-admin is pointed at the emulator in two ways, both from the outside: the service-account
JSON's `token_uri` names the emulator's token endpoint (google-auth reads it), and the messaging
service's `FCM_URL` template names the emulator's send endpoint. `REQUESTS_CA_BUNDLE` makes
`requests` trust the emulator's CA, for this test only.

Each typed error firebase-admin raises is checked against the answer that caused it (its
`http_response`), so the emulator is proven to answer what Google answers for that case:
firebase-admin picks the type from the `FcmError` detail, else from the HTTP status.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import firebase_admin
import google.auth.credentials
import pytest
import requests
from firebase_admin import credentials, exceptions, messaging
from google.auth.transport import Request as AuthRequest

from pushgate.emulators import Emulators
from tests.support.emulator_clock import Clock, ServiceAccount

_apps = itertools.count(1)
AppFactory = Callable[..., firebase_admin.App]
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


class HandedOverToken(google.auth.credentials.Credentials):
    """An access token obtained elsewhere (as `gcloud auth print-access-token` gives one): it
    cannot be renewed here, so a refused token stays refused."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def refresh(self, request: AuthRequest) -> None:
        pass  # nothing to renew it with; google-auth then resends the same token


def answer(error: exceptions.FirebaseError) -> tuple[int, str, str | None, list[str]]:
    """The HTTP status, `error.status`, FcmError errorCode and BadRequest fields behind `error`."""
    response: requests.Response = error.http_response
    body = response.json()["error"]
    details = body.get("details", [])
    codes = [d["errorCode"] for d in details if d["@type"] == FCM_ERROR]
    fields = [
        v.get("field", "")
        for d in details
        if d["@type"] == BAD_REQUEST
        for v in d["fieldViolations"]
    ]
    return response.status_code, body["status"], codes[0] if codes else None, fields


@pytest.fixture
def firebase_app(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppFactory]:
    assert emulators.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulators.ca_file))
    monkeypatch.setattr(
        messaging._MessagingService,
        "FCM_URL",
        emulators.fcm_url + "/v1/projects/{0}/messages:send",
    )
    apps: list[firebase_admin.App] = []

    def make(
        service_account: dict[str, str] | google.auth.credentials.Credentials,
        project_id: str | None = None,
    ) -> firebase_admin.App:
        credential: Any = (
            credentials.Certificate(service_account)
            if isinstance(service_account, dict)
            else service_account
        )
        options = {} if project_id is None else {"projectId": project_id}
        app = firebase_admin.initialize_app(
            credential, options, name=f"emulator-test-{next(_apps)}"
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        firebase_admin.delete_app(app)


async def send(message: messaging.Message, app: firebase_admin.App, dry_run: bool = False) -> str:
    return await asyncio.to_thread(messaging.send, message, dry_run, app)


def android_message(fid: str = "fcm-token-1") -> messaging.Message:
    return messaging.Message(
        fid=fid,
        notification=messaging.Notification(title="Hi", body="there"),
        data={"campaign": "7"},
        android=messaging.AndroidConfig(priority="high", collapse_key="c1"),
    )


async def test_a_message_is_sent_and_recorded_with_the_whole_body(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    account = service_account(project_id="demo-project")
    app = firebase_app(account)

    name = await send(android_message(), app)

    assert name.startswith("projects/demo-project/messages/")
    [delivery] = emulators.state.deliveries(platform="android")
    assert delivery.token == "fcm-token-1"
    payload: dict[str, Any] = delivery.payload
    assert payload["message"]["notification"] == {"title": "Hi", "body": "there"}
    assert payload["message"]["data"] == {"campaign": "7"}
    assert payload["message"]["android"]["priority"] == "high"
    assert delivery.headers["authorization"].startswith("Bearer ya29.")


async def test_a_message_to_a_registration_token_is_delivered_to_that_token(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account())
    with pytest.warns(DeprecationWarning, match="token is deprecated"):
        message = messaging.Message(token="registration-1", data={"k": "v"})

    await send(message, app)

    [delivery] = emulators.state.deliveries(token="registration-1")
    assert delivery.payload["message"]["token"] == "registration-1"


async def test_a_dry_run_is_validated_but_not_delivered(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account(project_id="demo-project"))

    name = await send(android_message(), app, dry_run=True)

    assert name == "projects/demo-project/messages/fake_message_id"
    assert emulators.state.deliveries() == []


async def test_an_unregistered_token_raises_unregistered_error(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "gone", "UNREGISTERED")

    with pytest.raises(messaging.UnregisteredError) as raised:
        await send(android_message("gone"), app)

    assert answer(raised.value) == (404, "NOT_FOUND", "UNREGISTERED", [])
    assert emulators.state.deliveries() == []


async def test_a_sender_id_mismatch_raises_sender_id_mismatch_error(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "elsewhere", "SENDER_ID_MISMATCH")

    with pytest.raises(messaging.SenderIdMismatchError) as raised:
        await send(android_message("elsewhere"), app)

    assert answer(raised.value) == (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", [])


async def test_a_malformed_registration_token_raises_invalid_argument_naming_the_token(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "garbled", "INVALID_ARGUMENT")
    with pytest.warns(DeprecationWarning, match="token is deprecated"):
        message = messaging.Message(token="garbled", data={"k": "v"})

    with pytest.raises(exceptions.InvalidArgumentError) as raised:
        await send(message, app)

    assert answer(raised.value) == (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        ["message.token"],
    )
    assert str(raised.value) == "The registration token is not a valid FCM registration token"


async def test_a_reserved_data_key_raises_invalid_argument(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    """firebase-admin does not check data keys itself: FCM refuses `from`."""
    app = firebase_app(service_account())

    with pytest.raises(exceptions.InvalidArgumentError) as raised:
        await send(messaging.Message(fid="fid-1", data={"from": "me"}), app)

    assert answer(raised.value) == (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", ["message.data"])
    assert emulators.state.deliveries() == []


async def test_a_ttl_without_its_unit_raises_invalid_argument_from_the_schema(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    """firebase-admin's own types always write `"<n>s"`, so the malformed body goes through its
    messaging service's HTTP client and error handling, as `messaging.send` does."""
    app = firebase_app(service_account())
    service = messaging._get_messaging_service(app)
    body = {"message": {"fid": "fid-1", "android": {"ttl": "3600"}}}

    def post() -> None:
        try:
            service._client.body("post", url=service._fcm_url, json=body)
        except requests.exceptions.RequestException as error:
            raise service._handle_fcm_error(error) from error

    with pytest.raises(exceptions.InvalidArgumentError) as raised:
        await asyncio.to_thread(post)

    assert answer(raised.value) == (400, "INVALID_ARGUMENT", None, ["message.android.ttl"])
    assert str(raised.value) == (
        "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), "
        "Field 'ttl', Illegal duration format; duration must end with 's'"
    )
    assert emulators.state.deliveries() == []


async def test_quota_exceeded_raises_quota_exceeded_error(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "busy", "QUOTA_EXCEEDED")

    with pytest.raises(messaging.QuotaExceededError) as raised:
        await send(android_message("busy"), app)

    assert answer(raised.value) == (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", [])


async def test_a_third_party_auth_error_raises_third_party_auth_error(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    """A 401 with an FcmError: the APNs / web-push credential stored in Firebase, not the access
    token (google-auth renews the token twice, and the answer stays)."""
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "ios-via-fcm", "THIRD_PARTY_AUTH_ERROR")

    with pytest.raises(messaging.ThirdPartyAuthError) as raised:
        await send(android_message("ios-via-fcm"), app)

    assert answer(raised.value) == (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", [])
    assert str(raised.value) == "Auth error from APNS or Web Push Service"


async def test_an_expired_access_token_raises_unauthenticated_error(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount, clock: Clock
) -> None:
    account = service_account(project_id="demo-project")
    token, _ = emulators.fcm.issue("demo-project", account["client_email"])
    app = firebase_app(HandedOverToken(token), project_id="demo-project")
    clock.advance(3601)

    with pytest.raises(exceptions.UnauthenticatedError) as raised:
        await send(android_message(), app)

    assert answer(raised.value) == (401, "UNAUTHENTICATED", None, [])
    [detail] = raised.value.http_response.json()["error"]["details"]
    assert detail["reason"] == "ACCESS_TOKEN_EXPIRED"
    assert not isinstance(raised.value, messaging.ThirdPartyAuthError)
    assert emulators.state.deliveries() == []


async def test_an_unknown_access_token_raises_unauthenticated_error(
    emulators: Emulators, firebase_app: AppFactory
) -> None:
    app = firebase_app(HandedOverToken("ya29.never-issued"), project_id="demo-project")

    with pytest.raises(exceptions.UnauthenticatedError) as raised:
        await send(android_message(), app)

    assert answer(raised.value) == (401, "UNAUTHENTICATED", None, [])


async def test_sending_for_another_project_raises_permission_denied(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    app = firebase_app(service_account(project_id="demo-project"), project_id="other-project")

    with pytest.raises(exceptions.PermissionDeniedError) as raised:
        await send(android_message(), app)

    assert answer(raised.value) == (403, "PERMISSION_DENIED", None, [])
    assert not isinstance(raised.value, messaging.SenderIdMismatchError)


async def test_every_option_firebase_admin_encodes_passes_the_schema(
    emulators: Emulators, firebase_app: AppFactory, service_account: ServiceAccount
) -> None:
    """firebase-admin writes snake_case names, lower-case `priority`, timestamps and light
    colours: all of it is what Google's parser takes."""
    app = firebase_app(service_account(project_id="demo-project"))
    message = messaging.Message(
        fid="fid-every-option",
        data={"campaign": "7"},
        notification=messaging.Notification(title="T", body="B", image="https://i.example/a.png"),
        android=messaging.AndroidConfig(
            collapse_key="c",
            priority="normal",
            ttl=datetime.timedelta(seconds=3600, microseconds=500),
            restricted_package_name="com.example.app",
            data={"android": "1"},
            notification=messaging.AndroidNotification(
                title="T",
                body="B",
                icon="ic",
                color="#112233",
                sound="default",
                tag="tag",
                click_action="OPEN",
                body_loc_key="bk",
                body_loc_args=["a", "b"],
                title_loc_key="tk",
                title_loc_args=["c"],
                channel_id="news",
                image="https://i.example/b.png",
                ticker="tick",
                sticky=True,
                event_timestamp=datetime.datetime(2026, 1, 2, 3, 4, 5, 678000),
                local_only=False,
                priority="high",
                vibrate_timings_millis=[100, 200.5],
                default_vibrate_timings=False,
                default_sound=True,
                light_settings=messaging.LightSettings("#AABBCCDD", 500, 1000),
                default_light_settings=False,
                visibility="public",
                notification_count=3,
                proxy="deny",
            ),
            fcm_options=messaging.AndroidFCMOptions(analytics_label="label"),
            direct_boot_ok=True,
            bandwidth_constrained_ok=True,
            restricted_satellite_ok=False,
        ),
        apns=messaging.APNSConfig(
            headers={"apns-priority": "10"},
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    alert=messaging.ApsAlert(title="T", body="B", loc_key="k", loc_args=["x"]),
                    badge=1,
                    sound=messaging.CriticalSound("s", critical=True, volume=0.5),
                    content_available=True,
                    mutable_content=True,
                    thread_id="th",
                ),
                custom="value",
            ),
            fcm_options=messaging.APNSFCMOptions(analytics_label="l", image="https://i/x.png"),
            live_activity_token="lat",
        ),
        webpush=messaging.WebpushConfig(
            headers={"TTL": "60"},
            data={"w": "1"},
            notification=messaging.WebpushNotification(
                title="T",
                body="B",
                actions=[messaging.WebpushNotificationAction("a", "A")],
                timestamp_millis=1,
                vibrate=[100, 50],
            ),
            fcm_options=messaging.WebpushFCMOptions(link="https://example.com/"),
        ),
        fcm_options=messaging.FCMOptions(analytics_label="top"),
    )

    name = await send(message, app, dry_run=True)

    assert name == "projects/demo-project/messages/fake_message_id"


async def test_a_service_account_the_emulator_does_not_know_cannot_get_a_token(
    emulators: Emulators,
    firebase_app: AppFactory,
    service_account: ServiceAccount,
) -> None:
    from google.auth.exceptions import RefreshError

    account = dict(service_account())
    account["private_key_id"] = "0" * 40  # a key id the emulator never issued

    with pytest.raises(RefreshError, match="invalid_grant"):
        await send(android_message(), firebase_app(account))

    assert emulators.state.deliveries() == []
