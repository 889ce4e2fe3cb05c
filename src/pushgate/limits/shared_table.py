"""Rate limits and bad-key counts shared by the API processes of one machine, without Redis.

`serve` with several API processes on the embedded store would otherwise give each process its
own GCRA state (limits/rate.py) and its own failed-key counts (limits/bad_keys.py), multiplying
every limit by the number of processes. Instead they all open one fixed-size table in a
memory-mapped file in the data dir (`limits.table`); the parent zeroes it when `serve` starts
(`reset`), so limits start fresh as they do in memory.

Each slot is 24 bytes: a 64-bit hash of the key (0: empty), `ends` and `count`. For a rate key
`ends` is GCRA's theoretical arrival time (`count` unused); for a client's failed key checks it
is the end of the window that opened at the first failure, and `count` the failures in it. Both
mean nothing once `ends` has passed (a TAT in the past is a fresh key; a window that has ended
counts nothing), so a slot is free when empty or when `ends <= now`: entries expire without
anyone removing them. The hash is blake2b, the same in every process (Python's `hash()` is
salted per process); each process caches the hashes of the keys it saw last. Rate keys and
client addresses are hashed under their Redis names (pushgate.names), so they cannot meet.
Two keys whose 64-bit hashes are equal would share a slot; at these sizes that is negligible.

Clock: `time.monotonic()`, which on Linux is CLOCK_MONOTONIC, one clock for every process of the
machine (unlike wall time, it does not jump), so the times one process writes mean the same to
another. The table is not shared between machines: that is what PUSHGATE_REDIS_URL is for.

Lookup: the key's home slot is `hash % SLOTS`; the key may live in any of the PROBE slots from
there (the windows of the last home slots run into PROBE - 1 extra slots at the end of the file
rather than wrapping). A live slot holding the key wins; otherwise the first free slot is taken;
when all PROBE are live, the one that ends soonest is overwritten. The search goes past free
slots whose entry has ended (the key may have been placed beyond one before it ended) but stops
at an empty one: slots are emptied only all at once, by `reset`, so a key placed since would
have taken it; while the table is mostly empty, a key not in it costs a slot or two, not PROBE.

When full: a full probe window never fails or refuses a request. It forgets the entry closest to
expiring anyway, which only makes that one key's limit more lenient (a fresh burst, or a new
window with no failures). SLOTS (32,768) is sized for bad_keys.MAX_CLIENTS (10,000) open windows
plus every rate key, so with hashes spread evenly that is rare.

Updates: an exclusive `fcntl.flock` on the file, held only for the few struct reads and the
one write of one update. The API processes are single-threaded asyncio loops and each update
is synchronous, so nothing awaits under the lock, and no update is lost between processes (a
process that dies holding the lock releases it). About 786 KB of file, in the page cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import time
from pathlib import Path
from types import TracebackType

from pushgate import names
from pushgate.limits.rate import gcra_step

TABLE_FILENAME = "limits.table"
SLOTS = 32_768
PROBE = 16
_SLOT = struct.Struct("<Qdq")  # key hash (0: empty), ends (time.monotonic()), count
_MAX_CACHED_HASHES = 4_096
# Redis keeps a window of at least a millisecond (limits/redis.py); a window of 0 would end as
# it opened and never count anything.
_MIN_WINDOW = 0.001


def table_path(data_dir: Path) -> Path:
    return data_dir / TABLE_FILENAME


def shared_limits(data_dir: Path) -> SharedTable:
    """The table every API process of `serve` with this data dir opens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return SharedTable(table_path(data_dir))


def key_hash(key: str) -> int:
    """The key's slot hash, the same in every process; never 0, which marks an empty slot."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedTable:
    """The memory-mapped table; opening creates it (empty) when missing.

    `slots` is for tests that need a full probe window (slots=1: every key shares one window);
    every process on a file must use the same, as a file of another size is emptied on open."""

    def __init__(self, path: Path, slots: int = SLOTS) -> None:
        self.path = path
        self.slots = slots
        self.size = (slots + PROBE - 1) * _SLOT.size
        self._hashes: dict[str, int] = {}
        self._closed = False
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Under the lock, so that of two processes starting at once one sizes the file and
            # the other finds it sized; a size that is not ours is a new file (or one of another
            # layout) and is emptied by truncating to 0 first.
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != self.size:
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, self.size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, self.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __enter__(self) -> SharedTable:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._map.close()
        os.close(self._fd)

    def reset(self) -> None:
        """Forget every entry, in every process that has the table open."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._map[:] = bytes(self.size)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def hit(self, key: str, per_minute: int, now: float) -> float:
        """GCRA for a rate key, as GcraLimiter.hit: 0 when allowed, else seconds until one
        would be."""
        if per_minute <= 0:  # refused without looking: no need for the lock
            return gcra_step(None, per_minute, now)[0]
        hashed = self._hash(names.rate_key("", key))
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offset, own, ends, _ = self._find(hashed, now)
            wait, new_tat = gcra_step(ends if own else None, per_minute, now)
            if new_tat is not None:
                _SLOT.pack_into(self._map, offset, hashed, new_tat, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return wait

    def add_failure(self, client: str, window: float, now: float) -> tuple[int, float]:
        """Count one failed key check of a client: the failures in its window (which opens at
        the first) and the seconds the window has left."""
        hashed = self._hash(names.bad_key_key("", client))
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            offset, own, ends, count = self._find(hashed, now)
            if not own:
                ends, count = now + max(window, _MIN_WINDOW), 0
            count += 1
            _SLOT.pack_into(self._map, offset, hashed, ends, count)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return count, ends - now

    def _find(self, hashed: int, now: float) -> tuple[int, bool, float, int]:
        """Under the lock: (offset of the key's slot, whether it holds the key's live entry,
        that entry's ends and count)."""
        offset = (hashed % self.slots) * _SLOT.size
        free = -1
        soonest = offset
        soonest_ends = math.inf
        for _ in range(PROBE):
            slot_hash, ends, count = _SLOT.unpack_from(self._map, offset)
            if slot_hash == 0:
                return (free if free >= 0 else offset), False, 0.0, 0
            if ends <= now:
                if free < 0:
                    free = offset
            elif slot_hash == hashed:
                return offset, True, ends, count
            elif ends < soonest_ends:
                soonest, soonest_ends = offset, ends
            offset += _SLOT.size
        return (free if free >= 0 else soonest), False, 0.0, 0

    def _hash(self, key: str) -> int:
        hashed = self._hashes.get(key)
        if hashed is None:
            hashed = key_hash(key)
            if len(self._hashes) >= _MAX_CACHED_HASHES:  # the oldest goes: insertion order
                del self._hashes[next(iter(self._hashes))]
            self._hashes[key] = hashed
        return hashed


class TableRateLimiter:
    """limits.rate.RateLimiter on the shared table."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table

    async def take(self, key: str, per_minute: int) -> float:
        return self.table.hit(key, per_minute, time.monotonic())


class TableBadKeyCounter:
    """limits.bad_keys.SharedCounter on the shared table."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table

    async def add_failure(self, client: str, window: float) -> tuple[int, float]:
        return self.table.add_failure(client, window, time.monotonic())

    async def aclose(self) -> None:
        """Nothing: the table is shared with the rate limiter; whoever opened it closes it."""
