"""The FCM emulator driven by the real firebase-admin SDK (HTTP/1.1 through `requests`).

firebase-admin is pointed at the emulator in two ways, both from the outside: the service-account
JSON's `token_uri` names the emulator's token endpoint (google-auth reads it), and the messaging
service's `FCM_URL` template names the emulator's send endpoint. `REQUESTS_CA_BUNDLE` makes
`requests` trust the emulator's CA, for this test only.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import firebase_admin
import pytest
from firebase_admin import credentials, messaging

from pushgate.emulators import Emulators
from tests.emulators.conftest import ServiceAccount

_apps = itertools.count(1)


@pytest.fixture
def firebase_app(
    emulators: Emulators, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, str]], firebase_admin.App]]:
    assert emulators.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulators.ca_file))
    monkeypatch.setattr(
        messaging._MessagingService,
        "FCM_URL",
        emulators.fcm_url + "/v1/projects/{0}/messages:send",
    )
    apps: list[firebase_admin.App] = []

    def make(service_account: dict[str, str]) -> firebase_admin.App:
        app = firebase_admin.initialize_app(
            credentials.Certificate(service_account), name=f"emulator-test-{next(_apps)}"
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
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
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
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
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
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account(project_id="demo-project"))

    name = await send(android_message(), app, dry_run=True)

    assert name == "projects/demo-project/messages/fake_message_id"
    assert emulators.state.deliveries() == []


async def test_an_unregistered_token_raises_unregistered_error(
    emulators: Emulators,
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "gone", "UNREGISTERED")

    with pytest.raises(messaging.UnregisteredError) as raised:
        await send(android_message("gone"), app)

    assert raised.value.http_response.status_code == 404
    assert emulators.state.deliveries() == []


async def test_a_sender_id_mismatch_raises_sender_id_mismatch_error(
    emulators: Emulators,
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
    service_account: ServiceAccount,
) -> None:
    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "elsewhere", "SENDER_ID_MISMATCH")

    with pytest.raises(messaging.SenderIdMismatchError) as raised:
        await send(android_message("elsewhere"), app)

    assert raised.value.http_response.status_code == 403


async def test_an_invalid_token_raises_invalid_argument(
    emulators: Emulators,
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
    service_account: ServiceAccount,
) -> None:
    from firebase_admin import exceptions

    app = firebase_app(service_account())
    emulators.state.set_token_outcome("android", "garbled", "INVALID_ARGUMENT")

    with pytest.raises(exceptions.InvalidArgumentError):
        await send(android_message("garbled"), app)


async def test_a_service_account_the_emulator_does_not_know_cannot_get_a_token(
    emulators: Emulators,
    firebase_app: Callable[[dict[str, str]], firebase_admin.App],
    service_account: ServiceAccount,
) -> None:
    from google.auth.exceptions import RefreshError

    account = dict(service_account())
    account["private_key_id"] = "0" * 40  # a key id the emulator never issued

    with pytest.raises(RefreshError, match="invalid_grant"):
        await send(android_message(), firebase_app(account))

    assert emulators.state.deliveries() == []
