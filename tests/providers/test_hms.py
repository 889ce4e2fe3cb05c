"""HMS Push Kit pure parts: credential, token request, send body, result codes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from pushgate.providers import hms
from pushgate.providers.errors import CredentialError

TOKEN = "IQAAAACy0kYkAADqnrsvKz7mHSSiVPOdbVV"


def answer(code: str, msg: Any = "x") -> bytes:
    return json.dumps({"code": code, "msg": msg, "requestId": "r-1"}).encode()


def test_the_credential_parses_and_the_client_id_defaults_to_the_app_id() -> None:
    credential = hms.HmsCredential.parse({"app_id": 104000001, "client_secret": "s3cret"})
    assert (credential.app_id, credential.client_id) == ("104000001", "104000001")
    assert "s3cret" not in repr(credential)
    with pytest.raises(CredentialError, match="client_secret"):
        hms.HmsCredential.parse({"app_id": "1", "client_id": "1", "client_secret": " "})
    with pytest.raises(CredentialError, match="app_id"):
        hms.HmsCredential.parse({"client_id": "1", "client_secret": "s"})


def test_the_token_request_is_a_client_credentials_grant() -> None:
    form = parse_qs(hms.token_request_body("104000001", "a&b=c").decode(), strict_parsing=True)
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["104000001"],
        "client_secret": ["a&b=c"],
    }


def test_build_send_puts_the_one_token_in_a_list() -> None:
    message: dict[str, Any] = {"data": "{}", "android": {"urgency": "HIGH"}}
    body = {"validate_only": False, "message": message}
    path, data = hms.build_send("104000001", body, TOKEN)
    assert path == "/v1/104000001/messages:send"
    assert json.loads(data) == {
        "validate_only": False,
        "message": {"data": "{}", "android": {"urgency": "HIGH"}, "token": [TOKEN]},
    }
    assert "token" not in message


def test_build_send_refuses_another_target_or_no_token() -> None:
    with pytest.raises(ValueError):
        hms.build_send("1", {"message": {"topic": "news"}}, TOKEN)
    with pytest.raises(ValueError):
        hms.build_send("1", {"message": {}}, "")


@pytest.mark.parametrize(
    ("http", "code", "kind", "reason"),
    [
        (200, "80000000", "ok", ""),
        (200, "80300007", "dead_token", "NotRegistered"),
        (401, "80200001", "credential", "80200001"),
        (403, "80300002", "credential", "80300002"),
        (401, "80200003", "retry", "80200003"),
        (400, "80100001", "rejected", "80100001"),
        (400, "80100003", "rejected", "80100003"),
        (413, "80300008", "rejected", "80300008"),
        (400, "80300010", "rejected", "80300010"),
        (500, "81000001", "retry", "81000001"),
    ],
)
def test_every_hms_result_code_has_its_verdict(
    http: int, code: str, kind: str, reason: str
) -> None:
    verdict = hms.classify(http, {}, answer(code))
    assert (verdict.kind, verdict.reason, verdict.status) == (kind, reason, http)


def test_an_expired_access_token_is_a_retry_after_renewing_it() -> None:
    verdict = hms.classify(401, {}, answer("80200003", "oauth token expired"))
    assert (verdict.kind, verdict.detail, verdict.refresh_auth) == ("retry", "token_expired", True)


def test_a_partial_success_naming_our_token_illegal_is_a_dead_token() -> None:
    msg = json.dumps({"success": 0, "failure": 1, "illegal_tokens": [TOKEN]})
    verdict = hms.classify(200, {}, answer("80100000", msg), token=TOKEN)
    assert (verdict.kind, verdict.reason) == ("dead_token", "NotRegistered")


def test_a_partial_success_naming_other_tokens_is_ok_for_ours() -> None:
    msg = json.dumps({"success": 1, "failure": 1, "illegal_tokens": ["other"]})
    assert hms.classify(200, {}, answer("80100000", msg), token=TOKEN).kind == "ok"


def test_an_unreadable_partial_success_is_rejected() -> None:
    assert hms.classify(200, {}, answer("80100000", "{not json"), token=TOKEN).kind == "rejected"


def test_http_503_is_flow_control_and_honours_retry_after() -> None:
    verdict = hms.classify(503, {"Retry-After": "5"}, b"")
    assert (verdict.kind, verdict.retry_after) == ("retry", 5.0)


def test_answers_without_a_code_fall_back_on_the_status() -> None:
    assert hms.classify(502, {}, b"<html>").kind == "retry"
    unauthorized = hms.classify(401, {}, b"")
    assert (unauthorized.kind, unauthorized.refresh_auth) == ("credential", True)
    assert hms.classify(200, {}, b"{}").kind == "rejected"
    assert hms.classify(404, {}, b"").kind == "rejected"


def test_numeric_codes_are_read_like_strings() -> None:
    assert hms.classify(200, {}, b'{"code": 80000000, "msg": "Success"}').kind == "ok"
