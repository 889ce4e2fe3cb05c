"""The OpenAPI document describes every public endpoint the server routes."""

from __future__ import annotations

from pathlib import Path

from pushgate.api import openapi
from pushgate.config import Settings
from pushgate.server import create_app

# Served, but not part of the documented API: the page, its files and session, and the
# Prometheus endpoint (its format is Prometheus's).
UNDOCUMENTED_PREFIXES = ("/dashboard", "/metrics", "/docs")


def routed_paths(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path or path template) of every route the server has."""
    app = create_app(Settings(data_dir=tmp_path))
    return (
        {(m.lower(), p) for m, p in app.routes}
        | {(m.lower(), endpoint.template) for m, _, endpoint in app.templates}
        | {(m.lower(), p) for m, p in app.prefixes}
    )


def test_every_routed_endpoint_is_documented(tmp_path: Path) -> None:
    doc = openapi.document()["paths"]
    routed = routed_paths(tmp_path)
    missing = {
        (m, p)
        for m, p in routed
        if not p.startswith(UNDOCUMENTED_PREFIXES) and m not in doc.get(p, {})
    }
    assert missing == set()


def test_every_documented_endpoint_is_routed(tmp_path: Path) -> None:
    routed = routed_paths(tmp_path)
    documented = {(m, p) for p, ops in openapi.document()["paths"].items() for m in ops}
    assert documented - routed == set()
