"""Request-level errors of the Targeted Push API: every documented error body with its status,
pushgate's own error codes, and the rule that a rejected request changes nothing.

Each error body is exactly {"error": ..., "message": ...} (insider-ecosystem.md §1); the documented
ones are compared as bytes with the spec's samples (tests/support/spec.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.pushes import (
    ERROR_KEYS,
    PUSH_PATH,
    SETTINGS_DELAY,
    assert_nothing_recorded,
    campaigns,
    execute,
    jobs,
    notification,
    partner_id,
    push_one,
)
from tests.support.server import Partner
from tests.support.spec import (
    BAD_API_KEY,
    BLACKLISTED_APS,
    EMPTY_IDENTIFIERS,
    EMPTY_NOTIFICATIONS,
    INVALID_ADVANCED_PUSH_TYPE,
    INVALID_CERTIFICATE,
    NEGATIVE_INTEGER,
    TOO_MANY_IDENTIFIERS,
    TOO_MANY_NOTIFICATIONS,
    Documented,
)

KNOWN = {"uuid": "known-user"}


@pytest.fixture
def known(partner: Partner) -> Partner:
    """The partner with one reachable user, so that a request that is wrongly half-applied
    would leave a job behind."""
    partner.session(KNOWN, token="cd" * 32)
    return partner


def valid_first(*bad: dict[str, Any]) -> dict[str, Any]:
    """A body whose first notification is valid and reaches a user; the faulty ones follow."""
    return {"notifications": [notification(KNOWN), *bad]}


def assert_rejected(r: httpx.Response, status: int, partner: Partner) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body, dict) and set(body) == ERROR_KEYS, body
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    assert body["message"]
    assert_nothing_recorded(partner)
    return dict(body)


def assert_documented(r: httpx.Response, documented: Documented, partner: Partner) -> None:
    """The documented body, byte for byte (tests/support/spec.py: key order, separators, escaping),
    with its status; nothing recorded."""
    assert_rejected(r, documented.status, partner)
    assert r.content == documented.wire


def advanced(kind: str) -> dict[str, Any]:
    return {
        "advanced_push_type": kind,
        "advanced_push_items": [
            {
                "image_url": "https://img.example.com/1.jpg",
                "description": "d",
                "headline": "h",
                "id": 1,
            }
        ],
    }


# ---- documented errors (targeted-push-api.txt) ----


@pytest.mark.parametrize(
    "identifiers",
    [{}, None, {"INSIDER.email": ""}, {"uuid": "   "}],
    ids=["empty-object", "missing", "empty-value", "blank-value"],
)
def test_notification_without_identifiers_is_rejected(
    known: Partner, identifiers: dict[str, Any] | None
) -> None:
    r = known.push(valid_first(notification(identifiers)))

    assert_documented(r, EMPTY_IDENTIFIERS, known)


def test_empty_notifications_array_is_rejected(known: Partner) -> None:
    r = known.push({"notifications": []})

    assert_documented(r, EMPTY_NOTIFICATIONS, known)


def test_more_than_twenty_notifications_are_rejected(known: Partner) -> None:
    r = known.push({"notifications": [notification(KNOWN, camp_id=i + 1) for i in range(21)]})

    assert_documented(r, TOO_MANY_NOTIFICATIONS, known)


def test_twenty_notifications_are_accepted(known: Partner) -> None:
    r = known.push({"notifications": [notification(KNOWN, camp_id=i + 1) for i in range(20)]})

    assert r.status_code == 200, r.text
    assert len(r.json()["successes"]) == 20
    assert len(jobs(known)) == 20


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_deep_link_with_aps_key_is_blacklisted(known: Partner, platform: str) -> None:
    bad = notification(KNOWN, **{platform: {"deep_link": {"aps": "x"}}})

    r = known.push(valid_first(bad))

    assert_documented(r, BLACKLISTED_APS, known)


def test_advanced_push_item_deep_link_with_aps_key_is_blacklisted(known: Partner) -> None:
    payload = advanced("carousel")
    payload["advanced_push_items"][0]["deep_links"] = {"aps": "x"}

    r = known.push(valid_first(notification(KNOWN, advanced_push_payload=payload)))

    assert_documented(r, BLACKLISTED_APS, known)


@pytest.mark.parametrize(
    "fields",
    [
        {"camp_id": 0},
        {"camp_id": -1},
        {"android": {"channel_id": 0}},
        {"android": {"channel_id": -3}},
    ],
    ids=["camp_id-0", "camp_id-negative", "channel_id-0", "channel_id-negative"],
)
def test_non_positive_camp_or_channel_id_is_rejected(
    known: Partner, fields: dict[str, Any]
) -> None:
    bad = {**notification(KNOWN), **fields}

    r = known.push(valid_first(bad))

    assert_documented(r, NEGATIVE_INTEGER, known)


@pytest.mark.parametrize("kind", ["banner", "", "carousels"])
def test_unknown_advanced_push_type_is_rejected(known: Partner, kind: str) -> None:
    bad = notification(KNOWN, advanced_push_payload=advanced(kind))

    r = known.push(valid_first(bad))

    assert_documented(r, INVALID_ADVANCED_PUSH_TYPE, known)


@pytest.mark.parametrize(
    "payload",
    [
        advanced("Carousel"),
        advanced("slider"),
        {"preferred_type": "slider", "advanced_push_items": advanced("x")["advanced_push_items"]},
    ],
    ids=["Carousel", "slider", "preferred_type"],
)
def test_documented_advanced_push_types_are_accepted(
    known: Partner, payload: dict[str, Any]
) -> None:
    r = known.push({"notifications": [notification(KNOWN, advanced_push_payload=payload)]})

    assert r.status_code == 200, r.text
    assert r.json()["successes"] == [{"INSIDER.device_token": "cd" * 32}]


def test_partner_without_a_validated_certificate_is_rejected(start_server: Any) -> None:
    srv = start_server(emulate=False)
    partner = srv.create_partner()
    partner.session(KNOWN, token="ce" * 32)

    r = partner.push(valid_first())

    assert_documented(r, INVALID_CERTIFICATE, partner)


def test_partner_whose_credentials_all_failed_validation_is_rejected(known: Partner) -> None:
    changed = execute(
        known, "UPDATE credentials SET validated = 0 WHERE partner_id = ?", partner_id(known)
    )
    assert changed >= 1
    time.sleep(SETTINGS_DELAY)

    r = known.push(valid_first())

    assert_documented(r, INVALID_CERTIFICATE, known)


@pytest.mark.parametrize(
    "send",
    [
        lambda p: p.push({**valid_first(), "api_key": ""}),
        lambda p: p.push({**valid_first(), "api_key": "not-" + p.api_key}),
        lambda p: p.server.client.post(PUSH_PATH, json=valid_first()),
        lambda p: p.push({**valid_first(), "api_key": p.request_token}),
        lambda p: p.push({**valid_first(), "api_key": p.sdk_key}),
    ],
    ids=["empty", "wrong", "missing", "request-token", "sdk-key"],
)
def test_empty_wrong_or_missing_api_key_is_rejected(
    known: Partner, send: Callable[[Partner], httpx.Response]
) -> None:
    r = send(known)

    assert_documented(r, BAD_API_KEY, known)


def test_another_partners_api_key_does_not_reach_this_partners_users(
    known: Partner, server: Any
) -> None:
    other = server.create_partner()

    r = other.push(valid_first())

    assert r.status_code == 200, r.text
    assert r.json() == {"successes": [], "errors": {"NoUserFound": [KNOWN]}}
    assert jobs(known) == []


# ---- pushgate's own codes (insider-ecosystem.md §1, contract.md) ----


def identifier_notifications(total: int) -> list[dict[str, Any]]:
    """Notifications carrying `total` identifier values, three per notification."""
    out = []
    for start in range(0, total, 3):
        ids = {
            "uuid": f"id-{start}",
            "email": f"id-{start + 1}@example.com",
            "phone_number": f"+65{start + 2:08d}",
        }
        out.append(notification(dict(list(ids.items())[: min(3, total - start)])))
    return out


def test_more_than_fifty_identifiers_in_a_request_are_rejected(known: Partner) -> None:
    bad = identifier_notifications(51)
    bad[0]["identifiers"]["uuid"] = KNOWN["uuid"]
    assert sum(len(n["identifiers"]) for n in bad) == 51

    r = known.push({"notifications": bad})

    assert_documented(r, TOO_MANY_IDENTIFIERS, known)


def test_fifty_identifiers_in_a_request_are_accepted(known: Partner) -> None:
    body = identifier_notifications(50)
    assert len(body) == 17 and sum(len(n["identifiers"]) for n in body) == 50

    r = known.push({"notifications": body})

    assert r.status_code == 200, r.text
    assert len(r.json()["errors"]["NoUserFound"]) == 17


@pytest.mark.parametrize(
    "raw",
    [b'{"notifications": [', b"not json", b"", b'{"api_key": "x",}'],
    ids=["truncated", "text", "empty", "trailing-comma"],
)
def test_body_that_is_not_json_is_rejected(known: Partner, raw: bytes) -> None:
    r = known.server.client.post(
        PUSH_PATH, content=raw, headers={"content-type": "application/json"}
    )

    assert assert_rejected(r, 400, known)["error"] == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_json_body_that_is_not_an_object_is_rejected(known: Partner, raw: bytes) -> None:
    r = known.server.client.post(
        PUSH_PATH, content=raw, headers={"content-type": "application/json"}
    )

    assert_rejected(r, 400, known)


@pytest.mark.parametrize("field", ["camp_id", "camp_name", "title", "message", "image_url"])
def test_notification_missing_a_required_field_is_rejected(known: Partner, field: str) -> None:
    bad = notification(KNOWN)
    del bad[field]

    r = known.push(valid_first(bad))

    body = assert_rejected(r, 400, known)
    assert body["error"] == "missing_field"
    assert field in body["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"camp_id": "1"},
        {"camp_id": 1.5},
        {"title": 5},
        {"ttl": "60"},
        {"check_optin": "yes"},
        {"android": {"channel_id": "1"}},
        {"ios": {"badge": "1"}},
    ],
    ids=[
        "camp_id-str",
        "camp_id-float",
        "title-int",
        "ttl-str",
        "check_optin-str",
        "channel",
        "badge",
    ],
)
def test_field_of_the_wrong_type_is_rejected(known: Partner, fields: dict[str, Any]) -> None:
    bad = {**notification(KNOWN), **fields}

    r = known.push(valid_first(bad))

    assert assert_rejected(r, 400, known)["error"] == "invalid_type"


def test_notifications_that_is_not_an_array_is_rejected(known: Partner) -> None:
    r = known.push({"notifications": notification(KNOWN)})

    assert assert_rejected(r, 400, known)["error"] == "invalid_type"


@pytest.mark.parametrize(
    "deep_link",
    [
        {"ins_dl_internal": "http://www.example.com/page"},
        {"ins_dl_external": "www.example.com"},
        {"ins_dl_internal": "https://"},
        {"ins_dl_url_scheme": "no scheme here"},
        {"ins_dl_json": "[1, 2]"},
        {"ins_dl_json": "not json"},
    ],
    ids=["internal-http", "external-bare", "internal-no-host", "scheme", "json-array", "json-text"],
)
def test_deep_link_value_of_the_wrong_form_is_rejected(
    known: Partner, deep_link: dict[str, Any]
) -> None:
    bad = notification(KNOWN, ios={"deep_link": deep_link})

    r = known.push(valid_first(bad))

    assert assert_rejected(r, 400, known)["error"] == "invalid_deeplink"


def test_advanced_push_item_default_deep_link_key_of_the_wrong_form_is_rejected(
    known: Partner,
) -> None:
    payload = advanced("slider")
    payload["advanced_push_items"][0]["deep_links"] = {"ins_dl_internal": "http://example.com"}

    r = known.push(valid_first(notification(KNOWN, advanced_push_payload=payload)))

    assert assert_rejected(r, 400, known)["error"] == "invalid_deeplink"


def test_deep_link_values_of_the_documented_forms_are_accepted(known: Partner) -> None:
    links = {
        "ins_dl_internal": "https://www.deeplink.useinsider",
        "ins_dl_external": "HTTPS://example.com/x",
        "ins_dl_url_scheme": "myapp://session/1",
        "ins_dl_json": {"page": "cart"},
        "Page": "Cart",
    }
    r = known.push(
        {
            "notifications": [
                notification(KNOWN, ios={"deep_link": links}, android={"deep_link": links}),
                notification(KNOWN, ios={"deep_link": {"ins_dl_json": '{"page": "cart"}'}}),
            ]
        }
    )

    assert r.status_code == 200, r.text
    assert len(r.json()["successes"]) == 2


def test_message_too_long_for_an_apns_payload_is_rejected(known: Partner) -> None:
    bad = notification(KNOWN, message="x" * 4100)

    r = known.push(valid_first(bad))

    assert assert_rejected(r, 400, known)["error"] == "payload_too_large"


def test_message_that_fits_a_provider_payload_is_accepted(known: Partner) -> None:
    r = known.push({"notifications": [notification(KNOWN, message="x" * 1800)]})

    assert r.status_code == 200, r.text


@pytest.mark.parametrize("ttl", [0, -5, 2_419_201])
def test_ttl_outside_one_second_to_28_days_is_rejected(known: Partner, ttl: int) -> None:
    r = known.push(valid_first(notification(KNOWN, ttl=ttl)))

    assert_rejected(r, 400, known)


def test_ttl_of_exactly_28_days_is_accepted(known: Partner) -> None:
    r = known.push({"notifications": [notification(KNOWN, ttl=2_419_200)]})

    assert r.status_code == 200, r.text


def test_body_over_five_million_bytes_is_rejected(known: Partner) -> None:
    body = {**valid_first(), "api_key": known.api_key, "padding": "x" * 5_000_000}

    r = known.server.client.post(PUSH_PATH, json=body)

    assert_rejected(r, 413, known)


def body_of_size(partner: Partner, size: int) -> bytes:
    body = {**valid_first(), "api_key": partner.api_key, "padding": ""}
    empty = json.dumps(body).encode()
    body["padding"] = "x" * (size - len(empty))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_body_of_exactly_five_million_bytes_is_accepted(known: Partner) -> None:
    r = known.server.client.post(
        PUSH_PATH,
        content=body_of_size(known, 5_000_000),
        headers={"content-type": "application/json"},
    )

    assert r.status_code == 200, r.text
    assert len(jobs(known)) == 1


def test_chunked_body_over_five_million_bytes_is_rejected(known: Partner) -> None:
    raw = body_of_size(known, 5_000_001)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 65536):
            yield raw[start : start + 65536]

    r = known.server.client.post(
        PUSH_PATH, content=chunks(), headers={"content-type": "application/json"}
    )

    assert_rejected(r, 413, known)


def test_requests_over_the_rate_limit_get_429_with_retry_after(known: Partner) -> None:
    known.update("--rate-limit", "3")
    time.sleep(SETTINGS_DELAY)

    answers = [known.push(valid_first()) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    r = answers[3]
    assert r.status_code == 429, r.text
    assert set(r.json()) == ERROR_KEYS
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(jobs(known)) == 3


def test_advanced_pushes_have_their_own_rate_limit(known: Partner) -> None:
    known.update("--advanced-rate-limit", "2")
    time.sleep(SETTINGS_DELAY)
    carousel = {"notifications": [notification(KNOWN, advanced_push_payload=advanced("carousel"))]}

    answers = [known.push(carousel) for _ in range(3)]
    plain = known.push(valid_first())

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert set(answers[2].json()) == ERROR_KEYS
    assert int(answers[2].headers["retry-after"]) >= 1
    assert plain.status_code == 200, plain.text
    assert len(jobs(known)) == 3


def test_api_key_from_an_address_outside_the_allow_list_is_refused(known: Partner) -> None:
    known.update("--allow-ip", "10.0.0.0/8")
    time.sleep(SETTINGS_DELAY)

    r = known.push(valid_first())

    assert assert_rejected(r, 403, known)["error"] == "ip_not_allowed"


def test_api_key_from_an_allowed_address_is_accepted(known: Partner) -> None:
    known.update("--allow-ip", "10.0.0.0/8", "--allow-ip", "127.0.0.0/8")

    r = push_one(known, KNOWN)

    assert r.status_code == 200, r.text


def test_rejected_request_does_not_touch_an_existing_campaign(known: Partner) -> None:
    ok = known.push(
        {"notifications": [notification(KNOWN, camp_id=5, camp_name="kept", title="T")]}
    )
    assert ok.status_code == 200
    # Job ids, not whole rows: the delivery worker moves the job's state meanwhile.
    before = [j["id"] for j in jobs(known)]

    r = known.push(
        {
            "notifications": [
                notification(KNOWN, camp_id=5, camp_name="changed"),
                notification(KNOWN, camp_id=6, camp_name="new"),
                notification({}, camp_id=7),
            ]
        }
    )

    assert r.status_code == 400
    assert [j["id"] for j in jobs(known)] == before
    assert [(c["camp_id"], c["name"], c["requested_count"]) for c in campaigns(known)] == [
        (5, "kept", 1)
    ]
