"""SIGTERM: the server stops accepting, lets the sends under way finish for a grace period
(PUSHGATE_SHUTDOWN_GRACE), hands the rest back to the queue at once, exits within a bound; a
restart delivers what was handed back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.emulated import Control, jobs, notification, push_all, wait_for, wait_jobs_final
from tests.support.server import Partner, Server, new_backend_env

USERS = 10
# Grace, plus answering requests under way (none here), plus closing: a generous bound that a
# server waiting for its sends' 12 s timeout, or for leases to run out, would not meet.
EXIT_BOUND_SECONDS = 8.0
# uvicorn ends a graceful shutdown by raising the signal it caught again (exit code -15).
SIGTERM_EXIT = (0, -signal.SIGTERM)


def users_with_tokens(partner: Partner) -> tuple[list[str], list[str]]:
    uuids = [f"stop-{os.urandom(5).hex()}" for _ in range(USERS)]
    tokens = [os.urandom(32).hex() for _ in uuids]
    for uuid, token in zip(uuids, tokens, strict=True):
        partner.session({"uuid": uuid}, token=token, udid=uuid)
    return uuids, tokens


def sigterm(srv: Server) -> tuple[int, float]:
    """Send SIGTERM; the exit code and how long the exit took."""
    assert srv.proc is not None
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(60)
    srv.client.close()
    return code, time.monotonic() - started


def all_leased(partner: Partner, tokens: list[str]) -> bool:
    found = jobs(partner, tokens)
    return len(found) == len(tokens) and all(j["state"] == "leased" for j in found)


@pytest.fixture
def backend_env(backend: str) -> dict[str, str]:
    return new_backend_env(backend)


def start(data_dir: Path, backend_env: dict[str, str], grace: float) -> Server:
    env = {"PUSHGATE_SHUTDOWN_GRACE": str(grace)}
    return Server(data_dir, backend_env=backend_env, env=env).start()


def test_sends_cut_off_by_sigterm_are_handed_back_and_a_restart_delivers_them(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    srv = start(tmp_path / "data", backend_env, grace=0.5)
    partner = srv.create_partner()
    uuids, tokens = users_with_tokens(partner)
    control = Control(srv.base_url)
    control.fault("ios", latency_ms=30_000)  # every send hangs past the grace
    push_all(partner, [notification(u) for u in uuids])
    assert wait_for(lambda: all_leased(partner, tokens), 15)

    code, took = sigterm(srv)
    control.close()
    assert code in SIGTERM_EXIT
    assert took < EXIT_BOUND_SECONDS, took
    handed = jobs(partner, tokens)
    assert [j["state"] for j in handed] == ["queued"] * USERS  # not waiting for a lease to end
    assert all(j["last_error"] == "handed back at shutdown" for j in handed)
    assert all(j["finished_at"] is None for j in handed)
    assert not any(j["state"] == "leased" for j in jobs(partner))

    again = start(tmp_path / "data", backend_env, grace=10)
    partner.server = again
    try:
        control = Control(again.base_url)
        control.wait_delivered(tokens, timeout=20)
        done = wait_jobs_final(partner, USERS, 20, tokens)
        assert [j["state"] for j in done] == ["done"] * USERS
        assert sorted(control.delivered_tokens().elements()) == sorted(tokens)  # once each
        control.close()
    finally:
        again.stop()


def test_sends_under_way_at_sigterm_finish_within_the_grace(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    srv = start(tmp_path / "data", backend_env, grace=10)
    partner = srv.create_partner()
    uuids, tokens = users_with_tokens(partner)
    control = Control(srv.base_url)
    control.fault("ios", latency_ms=1500)
    push_all(partner, [notification(u) for u in uuids])
    assert wait_for(lambda: all_leased(partner, tokens), 15)

    code, took = sigterm(srv)
    control.close()
    assert code in SIGTERM_EXIT
    assert took < EXIT_BOUND_SECONDS + 2, took
    assert [j["state"] for j in jobs(partner, tokens)] == ["done"] * USERS
    with pytest.raises(httpx.TransportError):  # it no longer accepts anything
        httpx.get(srv.base_url + "/healthz", timeout=2)
