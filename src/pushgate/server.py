"""Assembles the service: store, services, routes, delivery worker, emulators."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pushgate import logs
from pushgate.api import openapi
from pushgate.api.admission import Admission, Limits
from pushgate.api.app import App
from pushgate.api.certificates import CertificateRoutes
from pushgate.api.http import Request, Response, json_response, text_response
from pushgate.api.monitoring import Monitoring
from pushgate.api.push import targeted_push
from pushgate.api.sdk import SdkRoutes
from pushgate.api.stats import REPORT_PREFIX, StatsRoutes
from pushgate.api.users import UserRoutes
from pushgate.api.users import too_large as user_too_large
from pushgate.auth import PartnerCache
from pushgate.config import DELIVERY_ROLES, Settings, env
from pushgate.dashboard.app import PREFIX, Dashboard
from pushgate.delivery.processes import ChildSpec, DeliveryProcesses
from pushgate.delivery.retention import JobRetention
from pushgate.delivery.senders import ProviderDirectory
from pushgate.delivery.worker import DeliveryWorker
from pushgate.emulation import StoredCredentials, mark_emulated
from pushgate.emulators.child import EmulatorProcess
from pushgate.emulators.runner import Emulators
from pushgate.heap import freeze_startup_objects
from pushgate.limits import bad_keys
from pushgate.limits.rate import MemoryRateLimiter, RateLimiter
from pushgate.providers.senders import Endpoints
from pushgate.providers.tls import make_ssl_context
from pushgate.push_service import PushService
from pushgate.queue import backlog
from pushgate.queue.base import JobQueue
from pushgate.store.backend import connect_sync, open_store

if TYPE_CHECKING:  # nats-py is an optional dependency
    from pushgate.queue.jetstream import JetStreamQueue

log = logging.getLogger("pushgate.server")


@dataclass
class Delivery:
    """The in-process delivery side: provider endpoints, senders, the worker task."""

    worker: DeliveryWorker | None = None
    processes: DeliveryProcesses | None = None  # --workers N > 1: the workers' processes
    broker: JetStreamQueue | None = None
    relay_task: asyncio.Task[None] | None = None
    directory: ProviderDirectory | None = None
    task: asyncio.Task[None] | None = None
    emulators: Emulators | None = None
    emulator_process: EmulatorProcess | None = None  # the emulators in a child process
    stored: StoredCredentials | None = None
    endpoints: Endpoints = field(default_factory=Endpoints.from_env)
    ca_pem: str | None = None  # extra CA to trust for providers (the emulators')

    def ssl_context(self) -> ssl.SSLContext | None:
        return make_ssl_context(self.ca_pem) if self.ca_pem else None


def create_app(settings: Settings) -> App:
    redis_limits = None
    if settings.redis_url:
        from pushgate.limits.redis import RedisLimits

        redis_limits = RedisLimits(settings.redis_url, settings.redis_prefix)
    rate: RateLimiter = redis_limits or MemoryRateLimiter()
    store = open_store(
        settings.data_dir,
        settings.database_url,
        settings.sqlite_synchronous,
        settings.campaign_stats,
        caps=redis_limits,
    )
    partners = PartnerCache(store.partner_by_secret, bad=bad_keys.from_settings(settings))
    push = PushService(store, partners, rate)
    users = UserRoutes(store, partners, push.rate)
    sdk = SdkRoutes(store, partners)
    stats = StatsRoutes(store, partners)
    app = App(access_log=logs.access_log_enabled())
    queue_watch = backlog.QueueWatch(
        backlog.BacklogReader(backlog.connector(settings.data_dir, settings.database_url))
    )
    app.admission = Admission(
        Limits(
            max_requests=settings.max_requests,
            max_body_bytes=settings.max_request_mb * 2**20,
            max_store_backlog=settings.max_store_backlog,
            max_queue_depth=settings.max_queue_depth,
        ),
        store_backlog=lambda: store.db.waiting,
        queue_depth=lambda: queue_watch.queued,
    )
    delivery = Delivery()
    wakers: list[Callable[[], None]] = []  # what to tell when a push queued jobs
    monitoring = Monitoring(
        app,
        store,
        push.metrics,
        backlog.BacklogReader(backlog.connector(settings.data_dir, settings.database_url)),
        settings.redis_url,
    )
    doc = openapi.document()
    docs_html = openapi.docs_page(doc)

    async def start_emulators() -> tuple[Endpoints, str | None, str | None]:
        """The emulators, in a child process or on this event loop, with their control routes
        mounted; where they listen (`GET /emulator/v1/info`) becomes the providers' endpoints."""
        await store.db.run(lambda conn: mark_emulated(conn, store.box))
        info: dict[str, Any]
        if settings.emulator_process:
            child = delivery.emulator_process = EmulatorProcess(settings.data_dir)
            info = await child.start()
            app.mounts.append((child.handles, child))
        else:
            delivery.stored = StoredCredentials(
                connect_sync(settings.data_dir, settings.database_url), store.box
            )
            emulators = Emulators(delivery.stored, ca_dir=settings.data_dir / "emulator-ca")
            await emulators.start("127.0.0.1")
            delivery.emulators = emulators
            control = emulators.control_app()
            app.mounts.append((control.handles, control))
            info = emulators.info()
        endpoints = Endpoints(
            apns_url=info["apns"]["url"],
            apns_sandbox_url=info["apns"]["sandbox_url"],
            fcm_url=info["fcm"]["url"],
            hms_url=info["hms"]["url"],
            hms_token_url=info["hms"]["token_url"],
        )
        where = "a process of their own" if settings.emulator_process else "this process"
        log.info("provider emulators (%s): %s", where, endpoints)
        return endpoints, info["ca_pem"], info["fcm"]["token_url"]

    async def configure_logging() -> None:
        # Here rather than only in the CLI: by the lifespan's start uvicorn has installed its
        # own log handlers, which this replaces, so that its lines are in the chosen format too.
        logs.configure(settings.log_level)

    async def start_processes(emulator_token_url: str | None) -> None:
        """The workers in child processes (delivery/processes.py), started once the
        emulators, when there are any, listen: the children send to them too."""
        endpoints, ca_pem, parent = delivery.endpoints, delivery.ca_pem, os.getpid()

        def spec(index: int) -> ChildSpec:
            return ChildSpec(settings, index, parent, endpoints, ca_pem, emulator_token_url)

        processes = DeliveryProcesses(settings.workers, spec, settings.shutdown_grace)
        delivery.processes = processes
        await processes.start()
        wakers.append(processes.wake)

    async def start() -> None:
        store.start()
        emulator_token_url: str | None = None
        if settings.emulate:
            delivery.endpoints, delivery.ca_pem, emulator_token_url = await start_emulators()
        else:
            emulator_token_url = env("FCM_TOKEN_URL")
            if ca_file := env("PROVIDER_CA_FILE"):
                with open(ca_file) as f:
                    delivery.ca_pem = f.read()
        queue: JobQueue = store.queue
        if settings.queue_url:
            from pushgate.queue.jetstream import JetStreamQueue

            broker = JetStreamQueue(settings.queue_url, store.db, settings.queue_prefix)
            await broker.start()
            delivery.broker = broker
            store.outbox = True
            queue = broker
            wakers.append(broker.relay_wakeup.set)
            delivery.relay_task = asyncio.create_task(broker.run_relay())
        if settings.role in DELIVERY_ROLES:
            if delivery.broker is not None:
                await delivery.broker.watch_dead_letters(store.record_delivery)
            if settings.workers > 1:
                await start_processes(emulator_token_url)
            else:
                delivery.directory = ProviderDirectory(
                    store.credential, delivery.endpoints, delivery.ssl_context, emulator_token_url
                )
                delivery.worker = DeliveryWorker(
                    queue,
                    store.record_deliveries,
                    delivery.directory,
                    concurrency=settings.worker_concurrency,
                )
                wakers.append(delivery.worker.wake)
                delivery.task = asyncio.create_task(delivery.worker.run())
        monitoring.started(delivery.worker or delivery.processes, delivery.broker)

        def on_queued() -> None:
            for wake in wakers:
                wake()

        push.on_queued = on_queued
        freeze_startup_objects()

    async def stop() -> None:
        if delivery.worker is not None:  # first: handing jobs back needs the queue and broker
            await delivery.worker.stop(settings.shutdown_grace)
        if delivery.processes is not None:
            await delivery.processes.stop()
        for task in (delivery.task, delivery.relay_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if delivery.broker is not None:
            await delivery.broker.close()
        if delivery.directory is not None:
            await delivery.directory.aclose()
        if delivery.emulators is not None:
            await delivery.emulators.stop()
        if delivery.emulator_process is not None:
            await delivery.emulator_process.stop()
        if delivery.stored is not None:
            delivery.stored.close()
        await monitoring.aclose()
        store.close()
        if redis_limits is not None:
            await redis_limits.aclose()

    async def openapi_json(request: Request) -> Response:
        return json_response(200, doc)

    async def docs(request: Request) -> Response:
        return text_response(200, docs_html, b"text/html; charset=utf-8")

    app.on_startup.append(configure_logging)
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.on_shutdown.append(partners.aclose)  # the bad-key counter's Redis client
    if settings.role in DELIVERY_ROLES and settings.job_retention_days > 0:
        app.background.append(JobRetention(store.db, settings.job_retention_days).run)
    if settings.role in ("all", "api"):
        app.background.append(push.run_async_requests)
        if settings.max_queue_depth:
            app.background.append(queue_watch.run)
    app.route("POST", "/api/v2/notification/user", targeted_push(push))
    app.route("POST", "/api/sdk/v1/session", sdk.session)
    app.route("POST", "/api/sdk/v1/events", stats.events)
    app.route("POST", "/api/v1/notification/get_statistics", stats.get_statistics)
    app.route("POST", "/api/message_center/v1", stats.message_center)
    app.route("GET", "/api/v1/campaigns", stats.with_api_key(stats.campaigns))
    app.route_prefix(
        "GET", REPORT_PREFIX, stats.with_api_key(stats.report), REPORT_PREFIX + "{camp_id}/report"
    )
    dashboard = Dashboard(store, partners, stats.campaigns, stats.report)
    app.route("GET", PREFIX, dashboard.page)
    app.route("GET", PREFIX + "/", dashboard.page)
    for method in ("GET", "POST", "DELETE"):
        app.route(method, PREFIX + "/session", dashboard.session)
    app.route_prefix("GET", PREFIX + "/static/", dashboard.static, PREFIX + "/static/{file}")
    app.route("GET", PREFIX + "/api/campaigns", dashboard.api("campaigns"))
    app.route_prefix(
        "GET",
        PREFIX + "/api/campaigns/",
        dashboard.api("report"),
        PREFIX + "/api/campaigns/{camp_id}/report",
    )
    app.route("POST", "/api/user/v1/upsert", users.handler(users.upsert), user_too_large)
    app.route("POST", "/api/user/v1/profile", users.handler(users.profile), user_too_large)
    app.route("POST", "/api/user/v1/delete", users.handler(users.delete), user_too_large)
    certificates = CertificateRoutes(
        store, partners, lambda: delivery.endpoints.hms_token_url, delivery.ssl_context
    )
    for provider in ("firebase", "apns", "huawei"):
        app.route("POST", f"/v1/settings/certificate/{provider}", certificates.handler(provider))
    app.route("GET", "/healthz", monitoring.healthz)
    app.route("GET", "/readyz", monitoring.readyz)
    app.route("GET", "/metrics", monitoring.metrics)
    app.route("GET", "/openapi.json", openapi_json)
    app.route("GET", "/docs", docs)
    return app
