"""Schema fuzzing with schemathesis against the service's own OpenAPI document, every endpoint.

The cases are generated from `pushgate.api.openapi.document()`, which is what the server
serves at `/openapi.json` (test_the_fuzzed_document_is_the_served_one checks that), and sent to
a real `pushgate serve` on each backend. A case goes out with its generated credential, without
one, or (4 times in 6) with a real partner's; a valid case with a real credential goes, half of
the time, over a seed that takes it past the validators' first checks (a registered user, sent
campaigns, a user-data body, a credential the emulators accept), so that the fuzzing reaches
the deep code paths, not only 401s.

Every answer must pass schemathesis's checks (not a server error, a documented status code,
content type and response schema, invalid requests rejected, missing headers rejected) and
`documented_error_shape`: every 4xx in the shape its API family documents (insider-ecosystem.md
and contract.md). The server's log must show no error. The cases actually executed are counted
and asserted (test_every_operation_was_fuzzed), so the fuzzing cannot silently run nothing.

PUSHGATE_FUZZ_EXAMPLES sets the Hypothesis examples per operation: the default, 400, makes more
than 5,000 cases per backend; a longer run raises it. PUSHGATE_FUZZ_STRICT=1 adds the check that
every schema-valid request is accepted, which holds only once the request schemas say all that
the validators check.
"""

from __future__ import annotations

import json
import os
import re
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method

from pushgate.api import openapi
from pushgate.emulators.credentials import (
    InMemoryCredentials,
    generate_apns_credential,
    generate_fcm_service_account,
)
from tests.support.server import Partner, Server

EXAMPLES = int(os.environ.get("PUSHGATE_FUZZ_EXAMPLES", "400"))
DOCUMENT = openapi.document()
schema = schemathesis.openapi.from_dict(DOCUMENT)

EMAIL = "fuzz-target@example.com"
UUID = "fuzz-target-1"
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
MESSAGE_CENTER_TEXTS = {"bad payload", "limit should be between 1 and 100.", "bad api key"}

OPERATIONS = [
    f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
]
# Operations with no parameters and no body have one possible request, so Hypothesis stops
# after it; every other one runs the full `EXAMPLES` in the fuzzing phase.
NO_INPUT = {
    f"{method.upper()} {path}"
    for path, item in DOCUMENT["paths"].items()
    for method, op in item.items()
    if not op.get("parameters") and "requestBody" not in op
}
WITH_INPUT = [label for label in OPERATIONS if label not in NO_INPUT]
assert len(WITH_INPUT) * 400 >= 5_000  # the default run is at least 5,000 cases per backend
# What the server logs when a request or a background job fails (JSON or text log lines).
LOGGED_ERROR = re.compile(r'"level":\s*"(ERROR|CRITICAL)"|\b(ERROR|CRITICAL)\b|Traceback')


# --- the targets: a server per backend, its partners and seeds -----------------------------


@dataclass
class Target:
    server: Server
    main: Partner  # pushes, statistics, users, sessions and events
    certs: Partner  # certificate uploads (a bad upload disables that partner's credential)
    insider_id: str
    credentials: dict[str, dict[str, Any]]  # a valid upload per certificate endpoint
    http: requests.Session = field(default_factory=requests.Session)
    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[Target]:
    main, certs = server.create_partner(), server.create_partner()
    for partner in (main, certs):
        partner.update("--rate-limit", "100000000", "--advanced-rate-limit", "100000000")
    time.sleep(2.5)  # the server caches partner settings for 2 s
    insider_id = main.session({"email": EMAIL, "uuid": UUID}, token="fe" * 32)
    main.user_api("upsert", UPSERT_SEED)
    for camp_id in (1, 2):
        r = main.push({"notifications": [{**PUSH_SEED, "camp_id": camp_id}]})
        assert r.status_code == 200 and r.json()["successes"], r.text
    r = server.client.post(
        "/api/sdk/v1/events",
        json={"insider_id": insider_id, "events": [{"event_name": "push_session", "camp_id": 1}]},
        headers={"X-SDK-KEY": main.sdk_key},
    )
    assert r.status_code == 200, r.text
    token_url = server.client.get("/emulator/v1/info").json()["fcm"]["token_url"]
    directory = InMemoryCredentials()  # the emulators accept uploaded credentials
    credentials = {
        "apns": generate_apns_credential(directory).as_upload(),
        "firebase": generate_fcm_service_account(directory, token_uri=token_url),
        "huawei": {"app_id": "100200300", "client_id": "100200300", "client_secret": "s3cret"},
    }
    found = Target(server, main, certs, insider_id, credentials)
    yield found
    found.http.close()


PUSH_SEED: dict[str, Any] = {
    "identifiers": {"email": EMAIL},
    "camp_id": 1,
    "camp_name": "fuzz",
    "title": "Title",
    "message": "Message",
    "image_url": "",
}
SESSION_SEED: dict[str, Any] = {
    "identifiers": {"email": "fuzz-session@example.com", "uuid": "fuzz-session-1"},
    "device": {"platform": "android", "device_token": "fuzz-session-token", "push_optin": True},
}
UPSERT_SEED: dict[str, Any] = {
    "users": [
        {
            "identifiers": {"email": "fuzz-profile@example.com", "uuid": "fuzz-profile-1"},
            "attributes": {"name": "Ada", "custom": {"loyalty": "Gold"}},
            "events": [{"event_name": "purchase", "timestamp": "2021-01-10T21:35:20Z"}],
        }
    ]
}
WHO_SEED: dict[str, Any] = {"identifiers": {"uuid": "fuzz-profile-1"}}


# --- how a generated case is sent -----------------------------------------------------------


def _choice(case: Case) -> int:
    """A number that is a function of the generated case, so a failing case (and Hypothesis's
    shrinking of it) always gets the same credential treatment."""
    key = json.dumps(
        [case.method, case.path, case.path_parameters, case.query, case.headers, case.body],
        sort_keys=True,
        default=repr,
    )
    return zlib.crc32(key.encode())


def _credentials(target: Target, path: str) -> dict[str, str]:
    partner = target.certs if path.startswith("/v1/settings/certificate/") else target.main
    return {
        "x-api-key": partner.api_key,
        "x-insider-api-key": partner.api_key,
        "x-sdk-key": partner.sdk_key,
        "x-partner-name": partner.name,
        "x-request-token": partner.request_token,
        "api_key": partner.api_key,  # in the body
    }


def prepare(case: Case, target: Target) -> str:
    """Give the case a real credential (4 in 6), none (1 in 6) or its generated one (1 in 6),
    and, with a real one, put a valid case over a seed half of the time. Returns what was done.

    An invalid (negative) case keeps the part schemathesis made invalid: its body gets a real
    `api_key` only in place of a string one or of an optional one left out, and no seed."""
    n = _choice(case)
    mode = ("generated", "dropped", "real", "real", "real", "real")[n % 6]
    if mode == "generated":
        return mode
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    secrets = _credentials(target, case.path)
    if case.headers is not None:
        for name in list(case.headers):
            if name.lower() in secrets:
                if mode == "dropped":
                    del case.headers[name]
                else:
                    case.headers[name] = secrets[name.lower()]
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and case.path in BODY_KEY:
        if mode == "dropped":
            if not negative:
                body.pop("api_key", None)
        elif not negative or isinstance(body.get("api_key", BODY_KEY[case.path]), str):
            body["api_key"] = secrets["api_key"]
    if mode == "dropped" or negative or (n >> 3) % 2:
        return mode
    _seed(case, target)
    return "seeded"


# The operations with an `api_key` in the body, and what an invalid case without one means:
# it may leave out the optional one of the push (str: fill it in), not the statistics' (None).
BODY_KEY = {"/api/v2/notification/user": "", "/api/v1/notification/get_statistics": None}


def _seed(case: Case, target: Target) -> None:
    path, body = case.path, case.body
    if path == "/api/v1/campaigns/{camp_id}/report":
        case.path_parameters = {**(case.path_parameters or {}), "camp_id": 1}
    if not isinstance(body, dict):
        return
    # Past the first checks of the validators: a registered user, a positive camp_id.
    if path == "/api/v2/notification/user":
        body["notifications"] = body.get("notifications") or [dict(PUSH_SEED)]
        for notification in body["notifications"]:
            notification["identifiers"] = {"email": EMAIL}
            _positive_camp_id(notification)
    elif path == "/api/sdk/v1/session":
        case.body = {**SESSION_SEED, **body}
    elif path == "/api/user/v1/upsert":
        case.body = {**UPSERT_SEED, **body}
    elif path in ("/api/user/v1/profile", "/api/user/v1/delete"):
        case.body = {**WHO_SEED, **body}
    elif path == "/api/sdk/v1/events":
        body["insider_id"] = target.insider_id
        for event in body.get("events") or []:
            _positive_camp_id(event)
    elif path == "/api/message_center/v1":
        body["identifiers"] = {"Email": EMAIL}
    elif path.startswith("/v1/settings/certificate/"):
        case.body = {**target.credentials[path.rsplit("/", 1)[1]], **body}


def _positive_camp_id(item: dict[str, Any]) -> None:
    camp_id = item.get("camp_id")
    if not isinstance(camp_id, int) or not 0 < camp_id < 2**63:
        item["camp_id"] = 1 + zlib.crc32(repr(camp_id).encode()) % 3


# --- the documented error shapes --------------------------------------------------------------


def _json(response: Response) -> Any:
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), (
        response.headers
    )
    return json.loads(response.content)


def _api_error(body: Any) -> None:
    """insider-ecosystem.md §1: {"error": "<snake_case_code>", "message": "<text>"}."""
    assert isinstance(body, dict) and set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and SNAKE_CASE.match(body["error"]), body
    assert isinstance(body["message"], str) and body["message"], body


def _plain_error(body: Any) -> None:
    """insider-ecosystem.md §4, §5: {"error": "<text>"}."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"], body


IDEMPOTENCY_ERRORS = ("invalid_idempotency_key", "idempotency_key_reused", "idempotency_key_in_use")


def documented_error_shape(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx in the shape of its API family; never a 5xx."""
    status, path = response.status_code, case.operation.path
    assert status < 500, (status, response.content[:500])
    if status < 400:
        return None
    if status == 405:  # the router's answer to an undeclared method, the same on every path
        _api_error(_json(response))
    elif path == "/api/message_center/v1":  # §3: plain text
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("text/plain"), response.headers
        assert response.content.decode() in MESSAGE_CENTER_TEXTS, response.content
    elif path.startswith("/api/user/v1/"):
        body = _json(response)
        if isinstance(body, dict) and str(body.get("error", "")) in IDEMPOTENCY_ERRORS:
            _api_error(body)  # contract.md gives these their bodies on every endpoint
        else:
            _plain_error(body)
    elif path == "/api/v1/notification/get_statistics" and status == 401:
        assert _json(response) == {"error": "Bad Api Key."}  # §2
    elif path.startswith("/v1/settings/certificate/") and status in (400, 403):
        body = _json(response)
        if status == 403:
            assert body == {"error": "Invalid api key"}, body  # §5
        elif set(body) == {"error"}:
            assert body == {"error": "No api key provided"}, body  # §5
        else:
            _api_error(body)  # a body that is not JSON: invalid_json
    else:
        _api_error(_json(response))  # and 406 invalid_certificate (contract.md)
    return None


# `positive_data_acceptance` wants a 2xx for every schema-valid request, but the request schemas
# are looser than the validators (ANY_OBJECT bodies; rules JSON Schema cannot say, such as the
# deep-link URLs or the 4 KB payload), so schema-valid requests get documented 400s and 406s.
# `unsupported_method` is test_undeclared_methods_get_405_with_allow on its own, so that its
# failure does not stop the fuzzing of every operation at its first case.
EXCLUDED_CHECKS = [unsupported_method]
if os.environ.get("PUSHGATE_FUZZ_STRICT") != "1":
    EXCLUDED_CHECKS.append(positive_data_acceptance)


# --- the tests --------------------------------------------------------------------------------


def test_the_fuzzed_document_is_the_served_one(server: Server) -> None:
    r = server.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(DOCUMENT))
    # Loaded from its URL, schemathesis leaves out the document's own endpoint.
    served = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    labels = {op.ok().label for op in served.get_all_operations()}
    assert labels == set(OPERATIONS) - {"GET /openapi.json"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
def test_every_endpoint_answers_as_documented(case: Case, target: Target) -> None:
    prepare(case, target)
    target.cases[case.operation.label] += 1
    response = case.call(base_url=target.server.base_url, session=target.http, timeout=30)
    target.statuses[case.operation.label][response.status_code] += 1
    case.validate_response(
        response, additional_checks=[documented_error_shape], excluded_checks=EXCLUDED_CHECKS
    )


def test_every_operation_was_fuzzed(target: Target) -> None:
    """Runs after the fuzzing of its backend: every operation ran its cases, and the server
    logged no error (a failed async request or delivery job answers no 5xx)."""
    summary = {
        label: (target.cases[label], dict(sorted(target.statuses[label].items())))
        for label in OPERATIONS
    }
    print(f"\nfuzzed cases per operation (count, statuses): {json.dumps(summary, indent=1)}")
    print(f"total: {sum(target.cases.values())}")
    for label in NO_INPUT:
        assert target.cases[label] >= 1, summary
    short = {label: target.cases[label] for label in WITH_INPUT if target.cases[label] < EXAMPLES}
    assert not short, f"operations that ran fewer than {EXAMPLES} cases: {short}"
    assert sum(target.cases.values()) >= len(WITH_INPUT) * EXAMPLES
    time.sleep(1)  # async requests and deliveries finish
    assert target.server.log_path is not None
    log = target.server.log_path.read_text(errors="replace").splitlines()
    errors = [line for line in log if LOGGED_ERROR.search(line)]
    assert not errors, "\n".join(errors[:50])


def test_undeclared_methods_get_405_with_allow(server: Server) -> None:
    """An undeclared method gets 405 in the API's error shape, with `Allow` naming the
    methods the resource has (RFC 9110 §15.5.6: a 405 response MUST carry Allow)."""
    wrong: dict[str, str | None] = {}
    for path, item in DOCUMENT["paths"].items():
        method = next(m for m in ("PUT", "PATCH") if m.lower() not in item)
        r = server.client.request(method, path.replace("{camp_id}", "1"), json={})
        assert r.status_code == 405, (path, r.status_code, r.text)
        _api_error(r.json())
        allowed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
        if not {method.upper() for method in item} <= allowed:
            wrong[path] = r.headers.get("allow")
    assert not wrong, f"405 answers without the right Allow header: {wrong}"


def test_empty_query_values_are_documented(target: Target) -> None:
    """`?name=` with an empty value is a request the document calls invalid unless the
    parameter says `allowEmptyValue`; the server must then reject it."""
    undocumented: dict[str, int] = {}
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                if param["in"] != "query" or param.get("allowEmptyValue"):
                    continue
                r = target.server.client.request(
                    method.upper(),
                    path.replace("{camp_id}", "1"),
                    params={param["name"]: ""},
                    headers={"X-API-KEY": target.main.api_key},
                )
                if r.status_code < 400:
                    undocumented[f"{method.upper()} {path}?{param['name']}="] = r.status_code
    assert not undocumented, f"accepted, but invalid by the document: {undocumented}"
