"""Rate limits and bad-key counts in the table several API processes share
(limits/shared_table.py), on real files and, for lost updates, real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushgate.limits.bad_keys import SharedCounter, Windows
from pushgate.limits.rate import PERIOD, GcraLimiter, RateLimiter
from pushgate.limits.shared_table import (
    PROBE,
    TABLE_FILENAME,
    SharedTable,
    TableBadKeyCounter,
    TableRateLimiter,
    shared_limits,
)

T0 = 1_000.0


@pytest.fixture
def table(tmp_path: Path) -> Iterator[SharedTable]:
    with SharedTable(tmp_path / TABLE_FILENAME) as opened:
        yield opened


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[SharedTable]:
    """A table of one home slot: every key probes the same PROBE slots."""
    with SharedTable(tmp_path / "crowded", slots=1) as opened:
        yield opened


def allowed(table: SharedTable, key: str, per_minute: int, count: int, now: float) -> int:
    return sum(1 for _ in range(count) if table.hit(key, per_minute, now) == 0)


steps = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([-1, 0, 1, 2, 3, 7, 60, 1_000]),
        st.sampled_from([0.0, 0.001, 0.5, 1.0, 20.0, 60.0]) | st.floats(0, 90),
    ),
    max_size=200,
)


# One table for every example, emptied by reset() at the start of each.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(steps)
def test_table_answers_as_the_memory_limiter_does(
    table: SharedTable, sequence: list[tuple[str, int, float]]
) -> None:
    table.reset()
    memory = GcraLimiter()
    now = T0
    for key, per_minute, elapsed in sequence:
        now += elapsed
        assert table.hit(key, per_minute, now) == memory.hit(key, per_minute, now)


# As many entries as one probe window holds, all in one window (each name is a rate key and a
# client): whatever the order in which entries end and slots are reused, none is forgotten.
# Mostly no time between steps, so that many entries are live at once.
crowded_steps = st.lists(
    st.tuples(
        st.integers(0, PROBE // 2 - 1),
        st.sampled_from([1, 2, 7, 60]),
        st.sampled_from([0.0] * 6 + [0.1, 0.5, 1.0, 3.0, 10.0, 61.0]),
    ),
    max_size=300,
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(crowded_steps)
def test_keys_sharing_a_probe_window_are_each_found_again(
    crowded: SharedTable, sequence: list[tuple[int, int, float]]
) -> None:
    crowded.reset()
    memory = GcraLimiter()
    windows = Windows(5)
    now = T0
    for n, per_minute, elapsed in sequence:
        now += elapsed
        name = f"k{n}"
        assert crowded.hit(name, per_minute, now) == memory.hit(name, per_minute, now)
        window = windows.add_failure(name, now)
        assert crowded.add_failure(name, 5, now) == (window.failures, window.ends - now)


def test_a_burst_gets_the_allowance_and_then_the_wait(table: SharedTable) -> None:
    assert allowed(table, "k", 60, 61, T0) == 60
    assert table.hit("k", 60, T0 + 0.25) == pytest.approx(0.75)
    assert table.hit("k", 60, T0 + 1.0) == 0


def test_zero_or_negative_allowance_refuses_everything(table: SharedTable) -> None:
    assert table.hit("k", 0, T0) == PERIOD
    assert table.hit("k", -5, T0) == PERIOD


def test_a_rate_key_and_a_client_of_the_same_name_are_counted_apart(table: SharedTable) -> None:
    assert allowed(table, "x", 2, 2, T0) == 2
    assert table.add_failure("x", 60, T0) == (1, 60.0)
    assert table.hit("x", 2, T0) > 0


def test_two_tables_on_one_file_share_their_counts(tmp_path: Path) -> None:
    with SharedTable(tmp_path / "t") as first:
        first.add_failure("203.0.113.7", 60, T0)
        assert allowed(first, "k", 10, 6, T0) == 6
        with SharedTable(tmp_path / "t") as second:
            assert second.add_failure("203.0.113.7", 60, T0 + 1) == (2, 59.0)
            assert allowed(second, "k", 10, 10, T0) == 4
            assert first.add_failure("203.0.113.7", 60, T0 + 2) == (3, 58.0)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pushgate.limits.shared_table import SharedTable

    path, attempts, now = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    table = SharedTable(path)
    print("ready", flush=True)
    sys.stdin.readline()
    allowed = sum(1 for _ in range(attempts) if table.hit("k", attempts, now) == 0)
    for _ in range(attempts):
        table.add_failure("203.0.113.7", 60, now)
    print(allowed, flush=True)
    """
)


def test_processes_taking_from_one_key_at_once_lose_no_update(tmp_path: Path) -> None:
    """Three processes each try the whole allowance at one instant (so that no allowance comes
    back while they run) and count as many failures: the allowance is given out exactly once and
    every failure is counted."""
    path = tmp_path / TABLE_FILENAME
    attempts = 5_000
    with ExitStack() as stack:
        children = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(path), str(attempts), str(T0)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(2)
        ]
        for child in children:
            stack.callback(child.kill)  # runs before its wait, should an assertion fail first
        for child in children:  # both have opened the table, perhaps creating it at once
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        with SharedTable(path) as table:
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            mine = allowed(table, "k", attempts, attempts, T0)
            for _ in range(attempts):
                table.add_failure("203.0.113.7", 60, T0)
            theirs = [int(child.communicate(timeout=60)[0]) for child in children]
            assert mine + sum(theirs) == attempts
            assert table.add_failure("203.0.113.7", 60, T0) == (3 * attempts + 1, 60.0)


def test_a_window_opens_at_the_first_failure_and_ends_after_its_length(
    table: SharedTable,
) -> None:
    assert table.add_failure("203.0.113.7", 60, 100.0) == (1, 60.0)
    assert table.add_failure("203.0.113.7", 60, 130.0) == (2, 30.0)
    assert table.add_failure("203.0.113.7", 60, 159.5) == (3, 0.5)
    assert table.add_failure("203.0.113.7", 60, 160.0) == (1, 60.0)


def test_clients_have_windows_of_their_own(table: SharedTable) -> None:
    table.add_failure("203.0.113.7", 60, 100.0)
    assert table.add_failure("203.0.113.8", 60, 110.0) == (1, 60.0)


def test_a_full_probe_window_forgets_the_entry_that_ends_soonest(crowded: SharedTable) -> None:
    for n in range(PROBE):
        crowded.add_failure(f"c{n}", 60, 100.0 + n)
    assert allowed(crowded, "k", 5, 5, 116.0) == 5  # took c0's slot, the soonest to end

    assert crowded.add_failure("c0", 60, 117.0) == (1, 60.0)  # forgotten: a new window
    assert crowded.add_failure("c2", 60, 117.0) == (2, 45.0)  # c1 made room for c0
    assert crowded.hit("k", 5, 117.0) > 0
    for n in range(1_000):  # never refuses for want of room
        assert crowded.add_failure(f"d{n}", 60, 118.0 + n) == (1, 60.0)
        assert crowded.hit(f"r{n}", 5, 118.0 + n) == 0


def test_slots_whose_entries_have_ended_are_taken_before_live_ones(crowded: SharedTable) -> None:
    crowded.add_failure("live", 60, 150.0)
    for n in range(PROBE - 1):
        crowded.add_failure(f"c{n}", 60, 100.0)
    for n in range(PROBE - 1):
        assert crowded.add_failure(f"new{n}", 60, 160.0) == (1, 60.0)
    assert crowded.add_failure("live", 60, 161.0) == (2, 49.0)


def test_a_key_is_found_past_a_slot_whose_entry_has_ended(crowded: SharedTable) -> None:
    crowded.add_failure("first", 60, 100.0)
    crowded.add_failure("second", 60, 150.0)
    assert crowded.add_failure("second", 60, 170.0) == (2, 40.0)


def test_reset_forgets_every_entry_in_every_process(tmp_path: Path) -> None:
    with SharedTable(tmp_path / "t") as first, SharedTable(tmp_path / "t") as second:
        first.add_failure("203.0.113.7", 60, T0)
        allowed(first, "k", 3, 3, T0)
        second.reset()
        assert first.add_failure("203.0.113.7", 60, T0) == (1, 60.0)
        assert allowed(first, "k", 3, 4, T0) == 3


def test_opening_keeps_the_entries_and_a_file_of_another_size_starts_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t"
    with SharedTable(path) as table:
        table.add_failure("203.0.113.7", 60, T0)
    with SharedTable(path) as table:
        assert table.add_failure("203.0.113.7", 60, T0) == (2, 60.0)
    path.write_bytes(b"\xff" * 100)
    with SharedTable(path) as table:
        assert path.stat().st_size == table.size
        assert table.add_failure("203.0.113.7", 60, T0) == (1, 60.0)


async def test_the_limiter_and_counter_use_the_monotonic_clock(tmp_path: Path) -> None:
    table = shared_limits(tmp_path / "data")
    try:
        assert table.path == tmp_path / "data" / TABLE_FILENAME
        limiter: RateLimiter = TableRateLimiter(table)
        counter: SharedCounter = TableBadKeyCounter(table)
        assert [await limiter.take("k", 60) for _ in range(60)] == [0.0] * 60
        assert 0.9 < await limiter.take("k", 60) <= 1.0

        failures, left = await counter.add_failure("203.0.113.7", 60)
        assert failures == 1
        assert left == pytest.approx(60.0)  # the window is as long as asked, from now
        failures, left = await counter.add_failure("203.0.113.7", 60)
        assert failures == 2
        assert 59 < left < 60
        await counter.aclose()
        assert await limiter.take("other", 60) == 0  # the table outlives the counter
    finally:
        table.close()
