"""The OpenAPI document describes every public endpoint the server routes."""

from __future__ import annotations

from pathlib import Path

from pushgate.api import openapi
from pushgate.config import Settings
from pushgate.server import create_app

# Served, but not part of the documented API: the page, its files and session, and the
# Prometheus endpoint (its format is Prometheus's).
UNDOCUMENTED_PREFIXES = ("/dashboard", "/metrics", "/docs")


def _template(path: str) -> str:
    return "/api/v1/campaigns/{camp_id}/report" if path == "/api/v1/campaigns/" else path


def test_every_routed_endpoint_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    doc = openapi.document()["paths"]
    routed = {(m.lower(), p) for m, p in app.routes} | {
        (m.lower(), _template(p)) for m, p in app.prefixes
    }
    missing = {
        (m, p)
        for m, p in routed
        if not p.startswith(UNDOCUMENTED_PREFIXES) and m not in doc.get(p, {})
    }
    assert missing == set()


def test_every_documented_endpoint_is_routed(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    routed = {(m.lower(), p) for m, p in app.routes} | {
        (m.lower(), _template(p)) for m, p in app.prefixes
    }
    documented = {(m, p) for p, ops in openapi.document()["paths"].items() for m in ops}
    assert documented - routed == set()
