"""`pushgate certs add`: the body of POST /v1/settings/certificate/{provider} from the files
providers hand out (contract.md "Credentials")."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import click

PROVIDERS = ("apns", "firebase", "huawei")


def _json_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.BadParameter(f"{path} is not a JSON file: {exc}", param_hint="FILE") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint="FILE")
    return value


def _need(options: dict[str, str | None], names: tuple[str, ...], what: str) -> dict[str, str]:
    missing = [n for n in names if not options.get(n)]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise click.UsageError(f"{what} needs {flags}")
    return {n: str(options[n]) for n in names}


def apns_body(path: Path, options: dict[str, str | None]) -> dict[str, Any]:
    """A .p8 key with --key-id, --team-id, --bundle-id; a .p12/.pfx with --bundle-id and
    its --password; or a JSON file in the endpoint's own shape."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return {**_json_file(path), **{k: v for k, v in options.items() if v}}
    if suffix in (".p12", ".pfx"):
        body: dict[str, Any] = _need(options, ("bundle_id",), "a .p12 certificate")
        body["p12"] = base64.b64encode(path.read_bytes()).decode()
        if options.get("password"):
            body["password"] = options["password"]
        return body
    body = _need(options, ("key_id", "team_id", "bundle_id"), "a .p8 key")
    body["private_key"] = path.read_text()
    return body


def firebase_body(path: Path) -> dict[str, Any]:
    """The service-account JSON as Firebase's console downloads it, unchanged."""
    return _json_file(path)


def huawei_body(path: Path | None, options: dict[str, str | None]) -> dict[str, Any]:
    """The app's ids and secret, and the optional default `category` and `importance`
    (Huawei's message classification; the server checks their values)."""
    given = {k: v for k, v in options.items() if v}
    body = {**(_json_file(path) if path else {}), **given}
    result: dict[str, Any] = _need(
        body, ("app_id", "client_id", "client_secret"), "an HMS credential"
    )
    for name in ("category", "importance"):
        if body.get(name) is not None:
            result[name] = body[name]
    return result
