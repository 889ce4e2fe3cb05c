"""Log lines: one JSON object per line (or plain text), tagged with the HTTP request's id.

The request id lives in a context variable that the HTTP layer sets for the duration of each
request (api/app.py), so every line logged while handling a request carries it without being
passed around. Formatting reads it when the line is emitted, which the stdlib handlers do
synchronously in the emitting context.

`PUSHGATE_LOG_FORMAT=json|text` picks the format; unset (`auto`), lines are JSON unless stderr
is a terminal. docs/operations.md, "Monitoring", documents the fields.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import msgspec

REQUEST_ID: ContextVar[str | None] = ContextVar("pushgate_request_id", default=None)
FORMATS = ("json", "text", "auto")
# Structured fields a record may carry (`extra=`), copied into the JSON object as they are.
EXTRA_FIELDS = ("method", "route", "status", "duration_ms")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers uvicorn configures with handlers of its own; they are handed to the root's handler.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")

# A client's X-Request-Id is kept only when it cannot smuggle anything into a log line or a
# header: bounded, and a plain token.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_encode = msgspec.json.Encoder().encode


class _Ids:
    """Request ids generated here: a random per-process prefix and a counter, which costs far
    less per request than a UUID and is unique across processes (the prefix is drawn again in
    a forked child)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)


def request_id(client_value: bytes | None) -> str:
    """The id of a request: the client's `X-Request-Id` when it is a sane token, else a new one."""
    if client_value is not None and _SANE_REQUEST_ID.fullmatch(client_value):
        return client_value.decode("ascii")
    return _ids.next()


class _Clock:
    """ISO 8601 UTC timestamps with milliseconds; the part up to the second is formatted once
    per second, not once per line."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", "request_id"?, <extra fields>?, "exc"?}` per line."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._clock.iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            line["request_id"] = rid
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the request id appended when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = REQUEST_ID.get()
        return text if rid is None else f"{text} request_id={rid}"


def resolve_format(name: str | None, stream: TextIO) -> str:
    """`json` or `text`: as asked, or for `auto`/unset, text only on a terminal."""
    chosen = (name or "auto").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"PUSHGATE_LOG_FORMAT must be one of {', '.join(FORMATS)}: {name!r}")
    if chosen == "auto":
        return "text" if stream.isatty() else "json"
    return chosen


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so that configuring twice does not add a second one."""


def configure(level: str = "info", fmt: str | None = None, stream: TextIO | None = None) -> None:
    """Send every log line (pushgate's and uvicorn's) through one handler on the root logger,
    in the chosen format. Plain stream handlers on the root (what `logging.basicConfig`
    installs) are replaced, uvicorn's removed; other handlers (a test's capture, say) stay."""
    stream = stream or sys.stderr
    chosen = resolve_format(fmt, stream)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) in (logging.StreamHandler, _Handler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Warnings too, so that nothing reaches stderr in another format.
    logging.captureWarnings(True)
    # Record fields no format here uses: skipping them saves work on every line (the logging
    # HOWTO's "Optimization"); the access log writes one line per request.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request's URL at INFO (the provider clients' token requests): a URL may
    # one day carry what must not be logged, and the lines say nothing an operator needs.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """For `uvicorn.run(log_config=...)`: leave uvicorn's loggers without handlers of their own,
    so that its lines, from the first, go through the root handler that `configure` installed."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }
