"""An import's checkpoint: how far the committed batches reach, and the counts so far.

On the data dir it is written in the meta table inside each batch's own transaction, so the
rows and the checkpoint that says they are done commit together (an interrupted import
neither skips nor repeats a row). A copy goes to the state file after every commit, for
people and scripts to watch; over HTTP that file is the checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

import msgspec

from pushgate.toolbox.reader import FileIdentity, Position

VERSION = 1


class Checkpoint(msgspec.Struct, kw_only=True):
    version: int = VERSION
    file: str  # absolute path
    format: str
    partner: str
    size: int
    mtime_ns: int
    head_sha256: str
    offset: int = 0  # the byte just after the last committed row
    rows: int = 0  # data rows committed, stored or rejected
    lines: int = 0  # lines read up to `offset`
    imported: int = 0  # rows that created a user
    updated: int = 0  # rows that changed an existing user
    stored: int = 0  # rows stored over HTTP, where new and existing users are not told apart
    devices: int = 0  # devices registered
    rejected: int = 0
    reasons: dict[str, int] = msgspec.field(default_factory=dict)  # rejected rows per rule
    rejects_file: str = ""
    rejects_bytes: int = 0  # the rejects file's length at the last commit
    finished: bool = False
    started_at: float = 0.0
    updated_at: float = 0.0

    def same_file(self, identity: FileIdentity, fmt: str, partner: str) -> bool:
        return (
            self.version == VERSION
            and (self.size, self.mtime_ns, self.head_sha256)
            == (identity.size, identity.mtime_ns, identity.head_sha256)
            and self.format == fmt
            and self.partner.lower() == partner.lower()
        )

    @property
    def position(self) -> Position:
        return Position(self.offset, self.rows, self.lines)


def fresh(path: Path, fmt: str, partner: str, identity: FileIdentity, rejects: Path) -> Checkpoint:
    return Checkpoint(
        file=str(path),
        format=fmt,
        partner=partner,
        size=identity.size,
        mtime_ns=identity.mtime_ns,
        head_sha256=identity.head_sha256,
        rejects_file=str(rejects),
        started_at=time.time(),
    )


def meta_key(partner_id: int, path: Path) -> str:
    """The meta-table key of an import of this file by this partner."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return f"users-import:{partner_id}:{digest}"


encode = msgspec.json.encode


def decode(data: str | bytes) -> Checkpoint | None:
    """None for a checkpoint this version cannot read (the import then starts over, which
    is safe: rows are upserts)."""
    try:
        return msgspec.json.decode(data, type=Checkpoint)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def read_file(path: Path) -> Checkpoint | None:
    try:
        return decode(path.read_bytes())
    except FileNotFoundError:
        return None


def write_file(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the state file atomically: a reader sees the old or the new one, whole. No
    fsync: like the database's default (synchronous=NORMAL), it survives a killed process."""
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(encode(checkpoint)))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
