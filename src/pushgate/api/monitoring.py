"""The operator's endpoints: /healthz (liveness), /readyz (readiness), /metrics (Prometheus).

docs/operations.md, "Monitoring", documents their answers and every metric.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from pushgate.api.app import App
from pushgate.api.http import Request, Response, json_response
from pushgate.delivery.worker import DeliveryView
from pushgate.exposition import Scrape, exposition
from pushgate.health import RETRY_AFTER_SECONDS, Check, Readiness, RedisPing
from pushgate.metrics import (
    PushMetrics,
    RequestMetrics,
    add_counts,
    merge_pushes,
    merge_requests,
)
from pushgate.queue.backlog import BacklogReader
from pushgate.store.store import Store
from pushgate.wire.health import HealthStatus, ReadyStatus

if TYPE_CHECKING:
    from pushgate.queue.jetstream import JetStreamQueue  # nats-py is an optional dependency


# What rendering needs of the API children of `serve --api-processes N` (api_processes.py: an
# assembly module, which imports the api rather than the other way round).
class ApiTotals(Protocol):
    requests: RequestMetrics
    pushes: PushMetrics
    store_units: int
    store_commits: int


class ApiChildren(Protocol):
    async def totals(self) -> ApiTotals: ...

    async def stop(self) -> None: ...


_PROMETHEUS = CONTENT_TYPE_LATEST.encode()
_UNAVAILABLE_HEADERS = ((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),)


def _select_one(conn: Any) -> None:
    conn.execute("SELECT 1").fetchone()


def _jobs_readable(conn: Any) -> None:
    conn.execute("SELECT id FROM jobs LIMIT 1").fetchall()


class Monitoring:
    """The routes, and what they read: the worker and the broker exist once the service has
    started (`started`)."""

    def __init__(
        self,
        app: App,
        store: Store,
        pushes: PushMetrics,
        backlog: BacklogReader,
        redis_url: str | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.pushes = pushes
        self.backlog = backlog
        self.worker: DeliveryView | None = None
        self.broker: JetStreamQueue | None = None
        self.redis = RedisPing(redis_url) if redis_url else None
        self.readiness = Readiness({})
        # With several API processes (api_processes.py) the serving process renders every
        # scrape: its children's counters join its own, and a child asks it for the text.
        self.api_children: ApiChildren | None = None
        self.rendered_elsewhere: Callable[[], Awaitable[bytes]] | None = None

    def started(self, worker: DeliveryView | None, broker: JetStreamQueue | None) -> None:
        self.worker, self.broker = worker, broker
        self.backlog.outbox = broker is not None
        # The queue is the job table, or JetStream in front of it.
        queue: Check = broker.check if broker is not None else self._jobs_readable
        checks: dict[str, Check] = {"store": self._store_answers, "queue": queue}
        if self.redis is not None:
            checks["redis"] = self.redis
        self.readiness = Readiness(checks)

    async def _store_answers(self) -> None:
        await self.store.db.run(_select_one)

    async def _jobs_readable(self) -> None:
        await self.store.db.run(_jobs_readable)

    async def aclose(self) -> None:
        self.backlog.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def healthz(self, request: Request) -> Response:
        """Liveness: the process serves HTTP (and has started); nothing else is checked."""
        if not self.app.ready:
            return json_response(503, HealthStatus(status="starting"))
        return json_response(200, HealthStatus(status="ok"))

    async def readyz(self, request: Request) -> Response:
        failing = ["service"] if not self.app.ready else await self.readiness.failing()
        if failing:
            body = ReadyStatus(status="unavailable", failing=failing)
            return json_response(503, body, _UNAVAILABLE_HEADERS)
        return json_response(200, ReadyStatus(status="ready"))

    def _jetstream_counters(self) -> dict[str, int]:
        if self.broker is None:
            return {}
        counters = dict(self.broker.counters)
        if self.worker is not None:  # delivery processes count their own claims
            add_counts(counters, self.worker.queue_counters)
        return counters

    async def render(self) -> bytes:
        """The Prometheus text of this process and the processes it adds up."""
        worker = self.worker
        requests, pushes = self.app.metrics, self.pushes
        units, commits = self.store.db.units, self.store.db.batches
        if self.api_children is not None:
            others = await self.api_children.totals()
            requests = merge_requests([requests, others.requests])
            pushes = merge_pushes([pushes, others.pushes])
            units += others.store_units
            commits += others.store_commits
        scrape = Scrape(
            requests=requests,
            pushes=pushes,
            delivery=worker.metrics if worker is not None else None,
            in_flight=worker.in_flight if worker is not None else 0,
            backlog=await self.backlog.read(),
            store_units=units,
            store_commits=commits,
            jetstream=self._jetstream_counters(),
        )
        return exposition(scrape)

    async def metrics(self, request: Request) -> Response:
        if self.rendered_elsewhere is None:
            return Response(200, await self.render(), _PROMETHEUS)
        try:
            return Response(200, await self.rendered_elsewhere(), _PROMETHEUS)
        except TimeoutError:
            body = ReadyStatus(status="unavailable", failing=["serving process"])
            return json_response(503, body, _UNAVAILABLE_HEADERS)
