"""The pure parts of webhooks (contract.md, "Webhooks"): signatures that the Standard Webhooks
library verifies (not our own code), event bodies, the retry schedule, and the URL rules
against server-side request forgery."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pushgate.webhooks import addresses, events, signing


def test_a_signed_event_verifies_with_the_standard_webhooks_library() -> None:
    secret = signing.new_secret()
    body = events.event_body(events.PUSH_ACCEPTED, time.time(), {"camp_id": 7, "x": None})
    message_id = events.new_event_id()
    now = int(time.time())
    headers = dict(signing.signed_headers(secret, message_id, now, body))
    verified = Webhook(secret).verify(body, headers)
    assert verified["type"] == "push.accepted"
    assert verified["data"] == {"camp_id": 7}  # an unknown value is left out, not null


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    secret = signing.new_secret()
    body = events.event_body(events.PUSH_FAILED, time.time(), {"reason": "Unregistered"})
    headers = dict(signing.signed_headers(secret, "msg_1", int(time.time()), body))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"Unregistered", b"Registered"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(signing.secret_key(first)) == 32
    with pytest.raises(ValueError, match="whsec_"):
        signing.secret_key("nope")


def test_the_body_is_type_timestamp_and_data_in_rfc_3339() -> None:
    body = json.loads(events.event_body(events.PUSH_EXPIRED, 0.5, {"platform": "ios"}))
    assert body == {
        "type": "push.expired",
        "timestamp": "1970-01-01T00:00:00.500Z",
        "data": {"platform": "ios"},
    }


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, None), (["push.failed"], ("push.failed",)), (["push.failed"] * 2, ("push.failed",))],
)
def test_events_are_all_or_a_list_of_known_types(value: object, parsed: object) -> None:
    assert events.parse_events(value) == parsed


@pytest.mark.parametrize("value", [[], "push.failed", [1], ["push.sent"]])
def test_other_events_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        events.parse_events(value)


def test_retries_follow_the_contract_then_give_up() -> None:
    delays = [events.retry_delay(n) for n in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert events.wants(None, events.PUSH_OPENED)
    assert not events.wants(("push.failed",), events.PUSH_OPENED)


NONE: tuple[addresses.Network, ...] = ()
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "https://"),
        ("https:///x", "https://"),
        ("http://example.com/", "https://"),
        ("https://user:pw@example.com/", "user name"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/#x", "fragment"),
        ("https://example.com/" + "a" * 2100, "longer"),
    ],
)
def test_a_url_of_the_wrong_form_is_refused(url: str, why: str) -> None:
    with pytest.raises(addresses.RefusedUrl, match=why):
        addresses.check_url(url, NONE)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "[::1]",
        "[fe80::1]",
        "[fc00::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "224.0.0.1",
        "localhost",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(host: str) -> None:
    parts = addresses.check_url(f"https://{host}/hook", NONE)
    with pytest.raises(addresses.RefusedUrl, match="not a public address"):
        asyncio.run(addresses.resolve_allowed(parts, NONE))


def test_an_allowed_network_is_reached_over_http_too() -> None:
    parts = addresses.check_url("http://127.0.0.1:8080/hook", LOOPBACK)
    assert asyncio.run(addresses.resolve_allowed(parts, LOOPBACK)) == ["127.0.0.1"]
    public_over_http = addresses.check_url("http://8.8.8.8/hook", LOOPBACK)
    with pytest.raises(addresses.RefusedUrl, match="https://"):
        asyncio.run(addresses.resolve_allowed(public_over_http, LOOPBACK))


def test_a_public_address_is_allowed() -> None:
    parts = addresses.check_url("https://8.8.8.8/hook", NONE)
    assert asyncio.run(addresses.resolve_allowed(parts, NONE)) == ["8.8.8.8"]
