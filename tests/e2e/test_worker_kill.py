"""A delivery worker killed mid-send loses no job.

`pushgate emulate` runs on its own with 300 ms of latency on every platform; `pushgate serve`
(without --emulate) is pointed at it, answers ~100 pushes, and is SIGKILLed while sends are in
flight. After a restart every answered push is delivered. A send cut off by the kill may have
reached the provider already, so a duplicate is allowed, but only for a job that was leased
(in flight) at the kill.

contract.md: "A synchronous answer (HTTP 200) is given once every send it lists in `successes` is
durably queued; delivery to the provider happens after it."
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.support.emulated import (
    PLATFORMS,
    EnvServer,
    Standalone,
    create_emulator_partner,
    device_token,
    jobs,
    notification,
    push_all,
    rows,
    wait_for,
    wait_jobs_final,
)

PER_PLATFORM = 33
LATENCY_MS = 300
# A leased job whose worker died is claimed again when its lease runs out (30 s in
# pushgate.delivery.worker), so recovery takes about that long.
RECOVERY_TIMEOUT = 80


def states(srv: EnvServer) -> dict[str, list[str]]:
    """Tokens by job state, straight from the jobs table."""
    found: dict[str, list[str]] = {}
    for row in rows(srv, "SELECT token, state FROM jobs"):
        found.setdefault(row["state"], []).append(row["token"])
    return found


def test_worker_killed_mid_send_loses_no_job(
    standalone: Standalone,
    serve_against: Callable[[], EnvServer],
    record_property: Callable[[str, object], None],
) -> None:
    control = standalone.control
    assert control is not None
    first = serve_against()
    partner = create_emulator_partner(standalone.data_dir, first)
    for platform in PLATFORMS:
        control.fault(platform, latency_ms=LATENCY_MS)
    uuids: list[str] = []
    for n in range(PER_PLATFORM):
        for platform in PLATFORMS:
            token = device_token(platform)
            uuids.append(f"kill-{platform}-{n}-{token[-6:]}")
            partner.session({"uuid": uuids[-1]}, platform, token)

    answered = push_all(partner, [notification(u, ttl=600) for u in uuids])
    # Kill once sends are in flight: the provider got some, other jobs are still leased.
    in_flight = wait_for(
        lambda: control.deliveries() and states(first).get("leased"), timeout=10, interval=0.01
    )
    assert in_flight, "no send was in flight"
    first.kill()
    at_kill = states(first)
    leased_at_kill = set(at_kill.get("leased", []))
    done_at_kill = set(at_kill.get("done", []))
    assert leased_at_kill, at_kill

    partner.server = second = serve_against()
    settled = wait_jobs_final(partner, len(answered), timeout=RECOVERY_TIMEOUT)

    assert Counter(j["state"] for j in settled) == {"done": len(answered)}
    counts = control.delivered_tokens()
    missing = [t for t in answered if counts[t] == 0]
    assert missing == [], f"{len(missing)} answered pushes never delivered"
    duplicated = {t: c for t, c in counts.items() if c > 1}
    duplicates = sum(c - 1 for c in duplicated.values())
    record_property("leased_at_kill", len(leased_at_kill))
    record_property("duplicates", duplicates)
    print(
        f"killed with {len(leased_at_kill)} jobs leased, {len(done_at_kill)} done; "
        f"{duplicates} duplicate deliveries after restart"
    )
    assert set(duplicated) <= leased_at_kill, "a job not in flight at the kill was sent twice"
    assert duplicates <= len(leased_at_kill)
    assert all(counts[t] == 1 for t in done_at_kill)
    assert {j["attempts"] for j in jobs(partner) if j["token"] not in leased_at_kill} <= {1}
    assert second.proc is not None and second.proc.poll() is None
