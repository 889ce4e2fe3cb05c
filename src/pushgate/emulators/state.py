"""State shared by the three emulators and their control routes.

- deliveries: every push accepted, one entry per device token, oldest first;
- token outcomes: tokens that are answered with a given provider failure from now on;
- token environments: APNs tokens registered for production or the sandbox only;
- faults: a share of a platform's requests answered with a transient failure (with `Retry-After`),
  followed by a GOAWAY or cut off by a dropped connection, and extra latency on every request;
- the `CredentialDirectory` the emulators verify credentials with.

All methods are synchronous and thread-safe.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from pushgate.emulators.credentials import (
    ApnsCredential,
    ApnsKey,
    CombinedCredentials,
    CredentialDirectory,
    FcmAccount,
    HmsApp,
    HmsCredential,
    InMemoryCredentials,
)
from pushgate.emulators.exchange import ConnectionFault
from pushgate.emulators.outcomes import OK, PLATFORMS, Platform

__all__ = [
    "FAULT_KINDS",
    "PLATFORMS",
    "ApnsCredential",
    "ApnsKey",
    "CombinedCredentials",
    "CredentialDirectory",
    "Delivery",
    "EmulatorState",
    "Fault",
    "FaultDecision",
    "FaultKind",
    "FcmAccount",
    "HmsApp",
    "HmsCredential",
    "InMemoryCredentials",
    "Platform",
    "TokenOutcome",
]

DEFAULT_MAX_DELIVERIES = 100_000

FaultKind = Literal["status", "goaway", "drop"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("status", "goaway", "drop")


@dataclass(frozen=True, slots=True)
class Delivery:
    platform: str
    token: str | None
    headers: dict[str, str]
    payload: Any
    received_at: str
    http_version: str | None = None
    """The request's HTTP version, `2` or `1.1`, where the emulator records it (HMS speaks
    both). In-process only: contract.md fixes the fields of `GET /emulator/v1/deliveries`."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "token": self.token,
            "headers": self.headers,
            "payload": self.payload,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class TokenOutcome:
    outcome: str
    """The canonical provider reason (see `outcomes.normalize_outcome`)."""
    set_at_ms: int
    """When it was set, milliseconds since the epoch (APNs' 410 `timestamp`)."""


@dataclass(frozen=True, slots=True)
class Fault:
    platform: str
    status: int | None
    """The transient failure's HTTP status (429, 500 or 503); None: latency only."""
    rate: float
    """The share of requests answered with `status`, 0..1."""
    retry_after: float | None = None
    """Seconds for the `Retry-After` header; None: no header."""
    latency_ms: float = 0
    kind: FaultKind = "status"
    """`status`: answer with `status`; `goaway`: answer, then GOAWAY naming that stream as the
    last one processed; `drop`: handle the request (a valid push is delivered), then close the
    connection instead of answering, so that the client cannot know it arrived."""
    applied: int = 0
    """How many requests it has hit since it was installed (as listed by `faults()`)."""

    @property
    def key(self) -> tuple[str, int | str | None]:
        """One fault per platform and status, and one per connection kind."""
        return (self.platform, self.status if self.kind == "status" else self.kind)

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "kind": self.kind,
            "status": self.status,
            "rate": self.rate,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What a fault means for one request."""

    latency: float
    """Seconds to wait before answering."""
    status: int | None
    """Answer with this transient failure, or None to go on normally."""
    retry_after: int | None
    connection: ConnectionFault | None = None
    """Handle the request, then send GOAWAY after its answer (`goaway`) or close the
    connection instead of answering (`drop`); None: leave the connection alone."""


class EmulatorState:
    def __init__(
        self,
        credentials: CredentialDirectory | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        self.generated = InMemoryCredentials()
        """Where the emulator credentials generated for this state are registered."""
        self.credentials: CredentialDirectory = (
            self.generated
            if credentials is None
            else CombinedCredentials([self.generated, credentials])
        )
        self.clock = clock
        self._lock = threading.Lock()
        self._deliveries: deque[Delivery] = deque(maxlen=max_deliveries)
        self._outcomes: dict[tuple[str, str], TokenOutcome] = {}
        self._environments: dict[tuple[str, str], str] = {}
        # Several faults per platform (e.g. 20% 503 and 5% 429), one per status or kind.
        self._faults: dict[tuple[str, int | str | None], Fault] = {}
        self._fault_credit: dict[tuple[str, int | str | None], float] = {}
        self._fault_applied: dict[tuple[str, int | str | None], int] = {}

    def now(self) -> float:
        return self.clock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # deliveries

    def record_delivery(
        self,
        platform: str,
        token: str | None,
        headers: Iterable[tuple[str, str]] | Mapping[str, str],
        payload: Any,
        http_version: str | None = None,
    ) -> Delivery:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        merged: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key.startswith(":"):
                continue
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        stamp = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)
        delivery = Delivery(
            platform=platform,
            token=token,
            headers=merged,
            payload=payload,
            received_at=stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            http_version=http_version,
        )
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    def deliveries(self, platform: str | None = None, token: str | None = None) -> list[Delivery]:
        with self._lock:
            found = list(self._deliveries)
        return [
            d
            for d in found
            if (platform is None or d.platform == platform) and (token is None or d.token == token)
        ]

    def clear_deliveries(self) -> int:
        with self._lock:
            count = len(self._deliveries)
            self._deliveries.clear()
        return count

    # token outcomes

    def set_token_outcome(self, platform: str, token: str, outcome: str) -> None:
        """From now on answer `token` with `outcome` (a canonical provider reason); `ok` clears."""
        with self._lock:
            if outcome == OK:
                self._outcomes.pop((platform, token), None)
            else:
                self._outcomes[(platform, token)] = TokenOutcome(outcome, self.now_ms())

    def token_outcome(self, platform: str, token: str) -> TokenOutcome | None:
        with self._lock:
            return self._outcomes.get((platform, token))

    def set_token_environment(self, platform: str, token: str, environment: str | None) -> None:
        """From now on `token` belongs to that environment (`production` or `sandbox`): the
        other environment's host answers it `BadDeviceToken`. None: any environment."""
        with self._lock:
            if environment is None:
                self._environments.pop((platform, token), None)
            else:
                self._environments[(platform, token)] = environment

    def token_environment(self, platform: str, token: str) -> str | None:
        with self._lock:
            return self._environments.get((platform, token))

    # faults

    def set_fault(self, fault: Fault) -> None:
        """Install (or replace) the platform's fault for that status or kind; rate 0 and no
        latency clears it (and a status fault with no status, every fault of the platform).
        The others stay."""
        key = fault.key
        clear_all = fault.kind == "status" and fault.status is None
        with self._lock:
            self._fault_credit.pop(key, None)
            self._fault_applied.pop(key, None)
            if fault.rate <= 0 and fault.latency_ms <= 0:
                doomed = [k for k in self._faults if k == key or (clear_all and k[0] == key[0])]
                for k in doomed:
                    self._faults.pop(k, None)
                    self._fault_credit.pop(k, None)
                    self._fault_applied.pop(k, None)
            else:
                self._faults[key] = replace(fault, applied=0)

    def faults(self, platform: str | None = None) -> list[Fault]:
        """The faults installed, each with how many requests it has hit so far."""
        with self._lock:
            return [
                replace(f, applied=self._fault_applied.get(key, 0))
                for key, f in self._faults.items()
                if platform in (None, key[0])
            ]

    def fault(self, platform: str) -> Fault | None:
        found = self.faults(platform)
        return found[0] if found else None

    def draw_fault(self, platform: str) -> FaultDecision | None:
        """The faults' effect on the next request: each fails exactly its `rate` of requests,
        spread evenly; when two fall due together, the second fails the next request."""
        with self._lock:
            faults = [(key, f) for key, f in self._faults.items() if key[0] == platform]
            if not faults:
                return None
            chosen: Fault | None = None
            for key, fault in faults:
                if (fault.kind == "status" and fault.status is None) or fault.rate <= 0:
                    continue
                credit = self._fault_credit.get(key, 0.0) + fault.rate
                if chosen is None and credit >= 1 - 1e-9:
                    credit -= 1
                    chosen = fault
                    self._fault_applied[key] = self._fault_applied.get(key, 0) + 1
                self._fault_credit[key] = credit
            latency_ms = max(f.latency_ms for _, f in faults)
        retry_after = None
        if chosen is not None and chosen.retry_after is not None:
            retry_after = max(0, int(-(-chosen.retry_after // 1)))
        return FaultDecision(
            latency=latency_ms / 1000,
            status=chosen.status if chosen is not None and chosen.kind == "status" else None,
            retry_after=retry_after,
            connection=_connection_fault(chosen),
        )

    def reset(self) -> None:
        """Forget deliveries, token outcomes and environments, and faults (credentials stay)."""
        with self._lock:
            self._deliveries.clear()
            self._outcomes.clear()
            self._environments.clear()
            self._faults.clear()
            self._fault_credit.clear()
            self._fault_applied.clear()


def _connection_fault(fault: Fault | None) -> ConnectionFault | None:
    if fault is None or fault.kind == "status":
        return None
    return fault.kind
