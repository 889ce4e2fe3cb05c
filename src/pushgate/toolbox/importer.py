"""`pushgate users import`: read, check, store in batches, checkpoint, resume."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import msgspec

from pushgate.toolbox import checkpoint as cp
from pushgate.toolbox.checkpoint import Checkpoint
from pushgate.toolbox.reader import FileError, Row, identify, read_header, read_rows
from pushgate.toolbox.rows import Reason, check
from pushgate.toolbox.sinks import Sink, Stored, ValidRow

DEFAULT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ImportJob:
    path: Path  # absolute
    fmt: str  # csv | jsonl
    partner: str
    rejects: Path
    state: Path
    batch_size: int = DEFAULT_BATCH
    restart: bool = False
    delimiter: str = ","


class ProgressView(Protocol):
    def start(self, total_bytes: int, done_bytes: int, done_rows: int) -> None: ...

    def advance(self, done_bytes: int, done_rows: int, run_rows: int) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    checkpoint: Checkpoint
    resumed_at: int | None  # the row an interrupted import continued after
    already_done: bool  # the file had been imported whole before: nothing was read
    run_rows: int  # rows read by this run
    seconds: float  # this run's time
    notice: str | None = None


def default_rejects(path: Path) -> Path:
    return path.with_name(path.name + ".rejects.jsonl")


def default_state(path: Path) -> Path:
    return path.with_name(path.name + ".import-state.json")


def _reject_line(row: Row, reasons: list[Reason]) -> bytes:
    return (
        msgspec.json.encode(
            {
                "row": row.number,
                "line": row.line,
                "data": row.raw,
                "reasons": [r.text() for r in reasons],
            }
        )
        + b"\n"
    )


class _Batch:
    """Rows read since the last commit."""

    def __init__(self) -> None:
        self.valid: list[ValidRow] = []
        self.rejected: list[tuple[Row, list[Reason]]] = []
        self.last: Row | None = None
        self.size = 0

    def add(self, row: Row) -> None:
        self.last = row
        self.size += 1
        result = check(row.doc) if row.doc else []
        if isinstance(result, list) or row.reasons:
            found = result if isinstance(result, list) else []
            # A cell that could not be read is left out of the document, so the rules may
            # miss it; they still report everything else wrong with the row, at once.
            found = [r for r in found if not (row.reasons and r.rule.startswith("required("))]
            self.rejected.append((row, row.reasons + found))
        else:
            self.valid.append(ValidRow(row, result))


def _open_rejects(path: Path, keep: int) -> BinaryIO:
    """The rejects file cut back to what the last commit counted: rejects written by a
    batch that never committed are written again when the batch is."""
    if keep and path.exists():
        f = path.open("r+b")
        f.truncate(min(keep, f.seek(0, 2)))  # never longer: truncate() would pad with zeros
        f.seek(0, 2)
        return f
    return path.open("wb")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One import of a file at a time: two would share its checkpoint and rejects file."""
    try:
        import fcntl
    except ImportError:  # not POSIX: unguarded
        yield
        return
    with path.open("rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileError("another import of this file is running") from None
        yield  # the lock goes with the descriptor, even if the process is killed


def run_import(job: ImportJob, sink: Sink, progress: ProgressView) -> Outcome:
    with exclusive(job.path):
        return _run(job, sink, progress)


def _run(job: ImportJob, sink: Sink, progress: ProgressView) -> Outcome:
    started = time.monotonic()
    if job.fmt == "csv":
        read_header(job.path, job.delimiter)  # a header that cannot be mapped stops us here
    identity = identify(job.path)
    found = None if job.restart else sink.load()
    notice = None
    if found is not None and not found.same_file(identity, job.fmt, job.partner):
        notice = "the file changed since its checkpoint: importing it from the start"
        found = None
    if found is not None and found.finished:
        return Outcome(found, None, True, 0, 0.0)
    state = found or cp.fresh(job.path, job.fmt, job.partner, identity, job.rejects)
    resumed_at = state.rows if found is not None else None
    rejects = _open_rejects(Path(state.rejects_file), state.rejects_bytes)
    run_rows = 0
    progress.start(identity.size, state.offset, state.rows)
    try:
        batch = _Batch()
        for row in read_rows(job.path, job.fmt, state.position, job.delimiter):
            batch.add(row)
            run_rows += 1
            if batch.size >= job.batch_size:
                state = _commit(sink, state, batch, rejects, job, final=False)
                progress.advance(state.offset, state.rows, run_rows)
                batch = _Batch()
        state = _commit(sink, state, batch, rejects, job, final=True)
        progress.advance(state.offset, state.rows, run_rows)
    finally:
        progress.stop()
        rejects.close()
    if state.rejected == 0:
        Path(state.rejects_file).unlink(missing_ok=True)
    return Outcome(state, resumed_at, False, run_rows, time.monotonic() - started, notice)


def _commit(
    sink: Sink, state: Checkpoint, batch: _Batch, rejects: BinaryIO, job: ImportJob, final: bool
) -> Checkpoint:
    now = time.time()
    for row, reasons in batch.rejected:
        rejects.write(_reject_line(row, reasons))
    mark = rejects.tell()

    def finish(stored: Stored) -> Checkpoint:
        # Called again when the transaction is retried: its rows' rejects are written once.
        rejects.seek(mark)
        rejects.truncate()
        for row, reason in stored.failed:
            rejects.write(_reject_line(row, [reason]))
        rejects.flush()
        reasons = Counter(state.reasons)
        for _, found in batch.rejected:
            reasons.update({r.rule for r in found})
        reasons.update(reason.rule for _, reason in stored.failed)
        last = batch.last
        return msgspec.structs.replace(
            state,
            offset=last.end if last else state.offset,
            rows=last.number if last else state.rows,
            lines=last.lines if last else state.lines,
            imported=state.imported + stored.imported,
            updated=state.updated + stored.updated,
            stored=state.stored + stored.stored,
            devices=state.devices + stored.devices,
            rejected=state.rejected + len(batch.rejected) + len(stored.failed),
            reasons=dict(reasons),
            rejects_bytes=rejects.tell(),
            finished=final,
            updated_at=now,
        )

    committed = sink.commit(batch.valid, now, finish)
    cp.write_file(job.state, committed)
    return committed
