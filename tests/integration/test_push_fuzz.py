"""Property tests against the running server: whatever the body, no 5xx, and every
error has the documented shape (insider-ecosystem.md §1: error bodies of this host are
always {"error": "<snake_case_code>", "message": "<text>"}; §4 for the user API)."""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.server import Partner, Server

FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SOME = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PUSH = "/api/v2/notification/user"
SDK = "/api/sdk/v1/session"
UUID = "fuzz-user-1"
EMAIL = "fuzz@example.com"
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture(scope="module")
def fuzz_partner(server: Server) -> Iterator[Partner]:
    partner = server.create_partner()
    partner.update("--rate-limit", "1000000", "--advanced-rate-limit", "1000000")
    time.sleep(2.5)  # the server caches partner settings for 2 s
    partner.session({"INSIDER.email": EMAIL, "uuid": UUID}, token="fe" * 32)
    yield partner


# --- strategies -----------------------------------------------------------------------------

HUGE_INTS = st.sampled_from(
    [
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64,
        2**64 + 1,
        -(2**63),
        -(2**63) - 1,
        10**30,
        -(10**30),
    ]
)
ANY_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    max_size=20,
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE_INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            ANY_TEXT | st.sampled_from(["api_key", "notifications", "users"]), children, max_size=5
        )
    ),
    max_leaves=12,
)
WRONG_TYPES = st.sampled_from(
    [None, True, False, 0, -1, 1.5, "", "x", "ünïcødé ✓ 🚀", "\u0000", [], {}, [1], {"a": 1}]
)
VALUES = JSON | WRONG_TYPES | HUGE_INTS | ANY_TEXT
KEYS = ANY_TEXT | st.sampled_from(
    [
        "async",
        "custom",
        "api_key",
        "report_attributes",
        "preferred_type",
        "thread_id",
        "thread-id",
        "delivery_silently",
        "deliver_silently",
        "send_single_user",
        "GFC_enabled",
        "check_optin",
        "ttl",
        "aps",
        "ins_dl_json",
        "ins_dl_url_scheme",
        "advanced_push_payload",
    ]
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON document (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    for key, inner in _children(value):
        out.append((*prefix, key))
        out.extend(paths(inner, (*prefix, key)))
    return out


def _children(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return list(enumerate(value)) if isinstance(value, list) else []


def containers(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if isinstance(value, dict) else []
    for key, inner in _children(value):
        out.extend(containers(inner, (*prefix, key)))
    return out


def mutations(seed: dict[str, Any]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    drop = st.tuples(st.just("drop"), st.sampled_from(paths(seed)))
    replace = st.tuples(st.just("replace"), st.sampled_from(paths(seed)), VALUES)
    add = st.tuples(st.just("add"), st.sampled_from(containers(seed)), KEYS, VALUES)
    repeat = st.tuples(st.just("repeat"), st.sampled_from(paths(seed)), st.integers(0, 60))
    return st.lists(drop | replace | add | repeat, min_size=1, max_size=4)


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _holds(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def mutate(seed: dict[str, Any], ops: list[tuple[Any, ...]]) -> Any:
    doc = copy.deepcopy(seed)
    for op in ops:
        kind, path = op[0], op[1]
        if kind == "add":
            target = _at(doc, path)
            if isinstance(target, dict):
                # A copy: sampled_from hands out the same {} and [] objects every time, and
                # a later op adding into one of them would make the document circular.
                target[op[2]] = copy.deepcopy(op[3])
            continue
        parent = _at(doc, path[:-1])
        key = path[-1]
        if _holds(parent, key):
            if kind == "drop":
                del parent[key]
            elif kind == "replace":
                parent[key] = copy.deepcopy(op[2])
            elif kind == "repeat":  # a list of copies: arrays that grow past their limits
                parent[key] = [copy.deepcopy(parent[key]) for _ in range(op[2])]
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity come out as (invalid) bare words


# --- checks ---------------------------------------------------------------------------------


def check_push_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body, dict), body
    if r.status_code == 200:
        assert {"successes", "errors"} <= set(body), body
    elif r.status_code == 202:
        assert body == {"message": "Async request accepted"}
    else:
        assert r.status_code >= 400, r.status_code
        assert set(body) == {"error", "message"}, body
        assert isinstance(body["error"], str) and SNAKE_CASE.match(body["error"]), body
        assert isinstance(body["message"], str), body


def check_user_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body, dict), body
    if r.status_code == 200:
        assert set(body) == {"data"} and {"successful", "fail"} <= set(body["data"]), body
    else:
        assert r.status_code >= 400, r.status_code
        assert set(body) == {"error"} and isinstance(body["error"], str), body


def check_sdk_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body, dict), body
    if r.status_code == 200:
        assert set(body) == {"insider_id"} and isinstance(body["insider_id"], str), body
    else:
        assert r.status_code >= 400, r.status_code
        assert set(body) == {"error", "message"}, body
        assert isinstance(body["error"], str) and SNAKE_CASE.match(body["error"]), body
        assert isinstance(body["message"], str), body


def post(partner: Partner, path: str, content: bytes, **headers: str) -> httpx.Response:
    return partner.server.client.post(
        path, content=content, headers={"Content-Type": "application/json", **headers}
    )


def user_headers(partner: Partner) -> dict[str, str]:
    return {"X-PARTNER-NAME": partner.name, "X-REQUEST-TOKEN": partner.request_token}


# --- the Targeted Push API ------------------------------------------------------------------

SEED_PUSH: dict[str, Any] = {
    "api_key": "<set per partner>",
    "report_attributes": ["INSIDER.email", "INSIDER.device_token", "INSIDER.name"],
    "notifications": [
        {
            "identifiers": {"INSIDER.email": EMAIL, "uuid": UUID, "custom": {"loyalty": "x1"}},
            "camp_id": 1,
            "camp_name": "fuzz",
            "title": "Title",
            "message": "Message",
            "image_url": "https://img.example/i.jpg",
            "ttl": 3600,
            "check_optin": True,
            "send_single_user": False,
            "GFC_enabled": False,
            "android": {
                "channel_id": 1,
                "sound": "sound_check",
                "deep_link": {"ins_dl_internal": "https://deeplink.example/a"},
            },
            "ios": {
                "thread-id": 1,
                "badge": 1,
                "content-available": False,
                "mutable-content": True,
                "sound": "sound_check",
                "deep_link": {
                    "ins_dl_url_scheme": "myapp://session/1",
                    "ins_dl_json": {"page": "cart"},
                },
            },
            "advanced_push_payload": {
                "advanced_push_type": "carousel",
                "advanced_push_items": [
                    {
                        "image_url": "https://img.example/1.jpg",
                        "deep_links": {"key": "value1"},
                        "description": "d1",
                        "headline": "h1",
                        "id": 1,
                    },
                    {
                        "image_url": "https://img.example/2.jpg",
                        "description": "d2",
                        "headline": "h2",
                        "id": 2,
                    },
                ],
            },
        }
    ],
}


def test_the_seed_notification_is_sent(fuzz_partner: Partner) -> None:
    r = post(fuzz_partner, PUSH, encode({**SEED_PUSH, "api_key": fuzz_partner.api_key}))
    assert r.status_code == 200, r.text
    assert r.json()["successes"] == [
        {"INSIDER.email": EMAIL, "INSIDER.device_token": "fe" * 32, "INSIDER.name": None}
    ]


@FUZZ
@given(doc=JSON)
def test_random_json_bodies_never_cause_a_server_error(fuzz_partner: Partner, doc: Any) -> None:
    check_push_answer(post(fuzz_partner, PUSH, encode(doc)))


@FUZZ
@given(doc=st.dictionaries(KEYS, JSON, max_size=5))
def test_random_json_objects_with_a_valid_api_key_never_cause_a_server_error(
    fuzz_partner: Partner, doc: dict[str, Any]
) -> None:
    check_push_answer(post(fuzz_partner, PUSH, encode({**doc, "api_key": fuzz_partner.api_key})))


@FUZZ
@given(content=st.binary(max_size=300))
def test_random_bytes_never_cause_a_server_error(fuzz_partner: Partner, content: bytes) -> None:
    check_push_answer(post(fuzz_partner, PUSH, content))


@FUZZ
@given(ops=mutations(SEED_PUSH))
@example(ops=[("replace", ("notifications", 0, "camp_id"), 2**64)])
@example(ops=[("replace", ("notifications", 0, "ttl"), -(2**63) - 1)])
@example(ops=[("replace", ("notifications", 0, "title"), "\ud800")])
@example(ops=[("repeat", ("notifications", 0), 21)])
@example(ops=[("add", ("notifications", 0), "async", True)])
def test_mutated_seed_notifications_never_cause_a_server_error(
    fuzz_partner: Partner, ops: list[tuple[Any, ...]]
) -> None:
    doc = mutate({**SEED_PUSH, "api_key": fuzz_partner.api_key}, ops)
    check_push_answer(post(fuzz_partner, PUSH, encode(doc)))


NESTING = [64, 1_000, 10_000, 100_000]


@pytest.mark.parametrize("depth", NESTING)
@pytest.mark.parametrize(
    "path", [PUSH, "/api/user/v1/upsert", "/api/user/v1/profile", "/api/user/v1/delete", SDK]
)
def test_deeply_nested_json_is_a_client_error_on_every_endpoint(
    fuzz_partner: Partner, path: str, depth: int
) -> None:
    content = b'{"api_key": "%s", "users": %s, "device": %s}' % (
        fuzz_partner.api_key.encode(),
        b"[" * depth + b"]" * depth,
        b"[" * depth + b"]" * depth,
    )
    headers = {**user_headers(fuzz_partner), "X-SDK-KEY": fuzz_partner.sdk_key}
    r = post(fuzz_partner, path, content, **headers)
    {PUSH: check_push_answer, SDK: check_sdk_answer}.get(path, check_user_answer)(r)


# --- the user data API ----------------------------------------------------------------------

SEED_USERS: dict[str, Any] = {
    "users": [
        {
            "identifiers": {
                "email": "fuzz-user@b.co",
                "phone_number": "+6512345678",
                "uuid": "fuzz-1x2y3z",
                "custom": {"user_loyalty_id": "xyz123"},
            },
            "attributes": {
                "name": "Ada",
                "age": 30,
                "email_optin": True,
                "birthday": "1980-01-01T00:00:00Z",
                "custom": {"loyalty": "Gold", "tags": ["a"]},
            },
            "events": [
                {
                    "event_name": "purchase",
                    "timestamp": "2021-01-10T21:35:20Z",
                    "event_params": {"custom": {"price": 1}},
                }
            ],
            "not_append": False,
        }
    ]
}


@SOME
@given(doc=JSON)
@example(
    doc={
        "users": [{"identifiers": {"uuid": "u"}, "events": [{"event_name": "a", "timestamp": {}}]}]
    }
)
def test_random_user_data_bodies_never_cause_a_server_error(
    fuzz_partner: Partner, doc: Any
) -> None:
    content = encode(doc)
    for action in ("upsert", "profile", "delete"):
        r = post(fuzz_partner, f"/api/user/v1/{action}", content, **user_headers(fuzz_partner))
        check_user_answer(r)


@SOME
@given(ops=mutations(SEED_USERS))
@example(ops=[("replace", ("users", 0, "events", 0, "timestamp"), {"at": 1})])
@example(ops=[("replace", ("users", 0, "events", 0, "timestamp"), [2021])])
@example(ops=[("repeat", ("users", 0), 60)])
def test_mutated_user_data_never_causes_a_server_error(
    fuzz_partner: Partner, ops: list[tuple[Any, ...]]
) -> None:
    content = encode(mutate(SEED_USERS, ops))
    check_user_answer(
        post(fuzz_partner, "/api/user/v1/upsert", content, **user_headers(fuzz_partner))
    )


def test_random_bytes_to_the_user_api_never_cause_a_server_error(fuzz_partner: Partner) -> None:
    for _ in range(50):
        content = os.urandom(int.from_bytes(os.urandom(1)))
        r = post(fuzz_partner, "/api/user/v1/upsert", content, **user_headers(fuzz_partner))
        check_user_answer(r)


# --- the SDK session ------------------------------------------------------------------------

SEED_SESSION: dict[str, Any] = {
    "identifiers": {"email": "fuzz-sdk@b.co", "phone_number": "+6512345679", "uuid": "fuzz-sdk-1"},
    "device": {
        "platform": "ios",
        "device_token": "ab" * 32,
        "environment": "production",
        "udid": "98BB170F",
        "push_optin": True,
        "location_optin": False,
        "app_version": "4.0",
        "os_version": "17.1",
        "model": "iPhone 11",
        "carrier": "x",
        "sdk_version": "1.0",
        "timezone": "Europe/Helsinki",
        "device_language": "en",
        "package_name": "com.example.app",
        "screen_width": 1170,
        "screen_height": 2532,
        "idfa": "AF3CCF3F",
    },
    "attributes": {"name": "Ada"},
}


@SOME
@given(doc=JSON)
def test_random_sdk_session_bodies_never_cause_a_server_error(
    fuzz_partner: Partner, doc: Any
) -> None:
    check_sdk_answer(post(fuzz_partner, SDK, encode(doc), **{"X-SDK-KEY": fuzz_partner.sdk_key}))


@SOME
@given(ops=mutations(SEED_SESSION))
@example(ops=[("replace", ("device", "udid"), {"id": 1})])
@example(ops=[("replace", ("device", "environment"), ["production"])])
@example(ops=[("replace", ("device", "platform"), "IOS")])
def test_mutated_sdk_sessions_never_cause_a_server_error(
    fuzz_partner: Partner, ops: list[tuple[Any, ...]]
) -> None:
    content = encode(mutate(SEED_SESSION, ops))
    check_sdk_answer(post(fuzz_partner, SDK, content, **{"X-SDK-KEY": fuzz_partner.sdk_key}))
