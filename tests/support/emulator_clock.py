"""A clock the emulator tests move by hand."""

from __future__ import annotations

import time
from collections.abc import Callable

ServiceAccount = Callable[..., dict[str, str]]


class Clock:
    """A wall clock that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
