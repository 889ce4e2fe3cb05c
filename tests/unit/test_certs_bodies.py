"""`pushgate certs add`: the endpoint's body from the files providers hand out."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import click
import pytest

from pushgate.toolbox.certs import apns_body, firebase_body, huawei_body

NO_OPTIONS: dict[str, str | None] = {"key_id": None, "team_id": None, "bundle_id": None}


def test_apns_p8_needs_its_ids(tmp_path: Path) -> None:
    key = tmp_path / "AuthKey_K.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    with pytest.raises(click.UsageError, match="--key-id, --team-id, --bundle-id"):
        apns_body(key, NO_OPTIONS)
    body = apns_body(key, {"key_id": "K", "team_id": "T", "bundle_id": "B", "password": None})
    assert body == {"key_id": "K", "team_id": "T", "bundle_id": "B", "private_key": key.read_text()}


def test_apns_p12_is_sent_as_base64_with_its_password(tmp_path: Path) -> None:
    cert = tmp_path / "push.p12"
    cert.write_bytes(b"\x30\x82binary")
    body = apns_body(cert, {**NO_OPTIONS, "bundle_id": "B", "password": "pw"})
    assert body == {
        "bundle_id": "B",
        "p12": base64.b64encode(b"\x30\x82binary").decode(),
        "password": "pw",
    }


def test_json_files_are_the_endpoints_shape_with_options_added(tmp_path: Path) -> None:
    hms = tmp_path / "hms.json"
    hms.write_text(json.dumps({"app_id": "1", "client_id": "2"}))
    options: dict[str, str | None] = {"app_id": None, "client_id": None, "client_secret": "s"}
    assert huawei_body(hms, options) == {"app_id": "1", "client_id": "2", "client_secret": "s"}
    with pytest.raises(click.UsageError, match="--client-secret"):
        huawei_body(hms, {**options, "client_secret": None})
    assert (
        huawei_body(None, {"app_id": "1", "client_id": "2", "client_secret": "s"})["app_id"] == "1"
    )
    hms.write_text(json.dumps({"app_id": "1", "client_id": "2", "category": "IM"}))
    assert huawei_body(hms, {**options, "importance": "LOW"}) == {
        "app_id": "1",
        "client_id": "2",
        "client_secret": "s",
        "category": "IM",
        "importance": "LOW",
    }
    account = tmp_path / "sa.json"
    account.write_text('{"type": "service_account", "project_id": "p"}')
    assert firebase_body(account) == {"type": "service_account", "project_id": "p"}
    account.write_text("[1]")
    with pytest.raises(click.BadParameter, match="JSON object"):
        firebase_body(account)
