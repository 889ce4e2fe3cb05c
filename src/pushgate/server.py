"""Assembles the service: store, services, routes, delivery worker, emulators."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn

from pushgate import logs
from pushgate.api import keyed, openapi
from pushgate.api.admission import Admission, Limits
from pushgate.api.app import App
from pushgate.api.certificates import CertificateRoutes
from pushgate.api.http import Request, Response, json_response, text_response
from pushgate.api.monitoring import Monitoring
from pushgate.api.one_write import OneWriteHttpToolsProtocol
from pushgate.api.push import targeted_push
from pushgate.api.sdk import SdkRoutes
from pushgate.api.stats import CANCEL_PATH, REPORT_PATH, StatsRoutes
from pushgate.api.users import UserRoutes
from pushgate.api.users import too_large as user_too_large
from pushgate.api.webhooks import PATH as WEBHOOK_PATH
from pushgate.api.webhooks import ROTATE_PATH as WEBHOOK_ROTATE_PATH
from pushgate.api.webhooks import WebhookRoutes
from pushgate.api_processes import ApiChildSpec, ApiProcesses, ApiReport, ParentLink
from pushgate.auth import PartnerCache
from pushgate.config import DELIVERY_ROLES, ConfigError, Settings, os_reason
from pushgate.dashboard.app import PREFIX, Dashboard
from pushgate.delivery.directory import ProviderDirectory
from pushgate.delivery.processes import ChildSpec, DeliveryProcesses
from pushgate.delivery.worker import DeliveryWorker, JobQueue
from pushgate.emulation import StoredCredentials, mark_emulated
from pushgate.emulators.child import ControlProxy, EmulatorProcess
from pushgate.emulators.runner import Emulators
from pushgate.heap import freeze_startup_objects
from pushgate.limits import bad_keys
from pushgate.limits.rate import MemoryRateLimiter, RateLimiter
from pushgate.limits.shared_table import SharedTable, TableRateLimiter, shared_limits
from pushgate.providers.senders import Endpoints
from pushgate.providers.tls import make_ssl_context
from pushgate.push_service import PushService
from pushgate.queue import backlog
from pushgate.queue.retention import JobRetention
from pushgate.store.backend import connect_sync, open_store, reader_connector
from pushgate.webhooks import addresses
from pushgate.webhooks.sender import WebhookSender

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
    webhook_task: asyncio.Task[None] | None = None  # sends webhook events (webhooks/sender.py)
    directory: ProviderDirectory | None = None
    task: asyncio.Task[None] | None = None
    emulators: Emulators | None = None
    emulator_process: EmulatorProcess | None = None  # the emulators in a child process
    control_proxy: ControlProxy | None = None  # an API child's way to their control routes
    stored: StoredCredentials | None = None
    endpoints: Endpoints = field(default_factory=Endpoints)
    ca_pem: str | None = None  # extra CA to trust for providers (the emulators')

    def ssl_context(self) -> ssl.SSLContext | None:
        return make_ssl_context(self.ca_pem) if self.ca_pem else None


def listening_socket(settings: Settings) -> socket.socket:
    """The socket every API process accepts on, bound before anything starts."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"error while attempting to bind on address {(settings.host, settings.port)!r}:"
            f" {os_reason(error)}"
        ) from None
    sock.set_inheritable(True)
    return sock


def backlog_connector(settings: Settings) -> Callable[[], backlog.Connection]:
    """The queue gauges' own connections (queue/backlog.py says why not the store's)."""
    return reader_connector(settings.data_dir, settings.database_url, backlog.READ_TIMEOUT_SECONDS)


def uvicorn_config(app: App, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_config=logs.uvicorn_log_config(),
        # Requests under way get this long to be answered on SIGTERM; then the workers get as
        # long again to finish their sends (docs/operations.md).
        timeout_graceful_shutdown=int(settings.shutdown_grace) or None,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools, with each response in one write (api/one_write.py)
        http=OneWriteHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        # X-Forwarded-For is trusted only from the load balancers named here: by default
        # no one, so the client address (`--allow-ip`) cannot be claimed by a header.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        server_header=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


def create_app(
    settings: Settings,
    listening: socket.socket | None = None,
    parent: ParentLink | None = None,
) -> App:
    """The service of the serving process (with `listening`, the socket its API children share
    when there are several) or of an API child (`parent`, its line to the serving process)."""
    redis_limits = None
    if settings.redis_url:
        from pushgate.limits.redis import RedisLimits

        redis_limits = RedisLimits(settings.redis_url, settings.redis_prefix)
    store = open_store(
        settings.data_dir,
        settings.database_url,
        settings.sqlite_synchronous,
        settings.campaign_stats,
        pool_size=settings.database_pool,
    )
    # Limits several API processes share without Redis: a table in the data dir, cleared by
    # the serving process as limits in memory are by a restart.
    table: SharedTable | None = None
    if redis_limits is None and settings.api_processes > 1:
        table = shared_limits(settings.data_dir)
        if parent is None:
            table.reset()
    rate: RateLimiter = redis_limits or (TableRateLimiter(table) if table else MemoryRateLimiter())
    partners = PartnerCache(store.partner_by_secret, bad=bad_keys.from_settings(settings, table))
    push = PushService(store, partners, rate, settings.idempotency_hours * 3600)
    users = UserRoutes(store, partners, push.rate, settings.idempotency_hours * 3600)
    sdk = SdkRoutes(store)
    stats = StatsRoutes(store, partners)
    webhook_networks = addresses.parse_networks(",".join(settings.webhook_allow_networks))
    app = App(access_log=settings.access_log)
    queue_watch = backlog.QueueWatch(backlog.BacklogReader(backlog_connector(settings)))
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
    delivery = Delivery(endpoints=Endpoints(**settings.provider_urls()))
    wakers: list[Callable[[], None]] = []  # what to tell when a push queued jobs

    def on_queued() -> None:
        for wake in wakers:
            wake()

    push.on_queued = on_queued
    monitoring = Monitoring(
        app,
        store,
        push.metrics,
        backlog.BacklogReader(backlog_connector(settings)),
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
            child = delivery.emulator_process = EmulatorProcess(
                settings.data_dir, settings.database_url, settings.log_format
            )
            info = await child.start()
            app.mounts.append((child.proxy.handles, child.proxy))
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
        logs.configure(settings.log_level, settings.log_format)

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

    async def start_api_processes(listening: socket.socket) -> None:
        """The other API processes, once the providers' endpoints are known."""
        child_settings = dataclasses.replace(settings, role="api", workers=1)
        emulators = delivery.emulator_process
        control_url = emulators.control_url if emulators is not None else None

        def spec(index: int) -> ApiChildSpec:
            return ApiChildSpec(
                child_settings,
                index,
                os.getpid(),
                listening.fileno(),
                delivery.endpoints,
                delivery.ca_pem,
                control_url,
            )

        children = ApiProcesses(
            settings.api_processes - 1,
            spec,
            settings.shutdown_grace,
            listening,
            on_queued,
            monitoring.render,
        )
        monitoring.api_children = children
        await children.start()

    async def start_as_api_child(link: ParentLink) -> None:
        """An API child: the serving process delivers, relays and runs the emulators."""
        spec = link.spec
        delivery.endpoints, delivery.ca_pem = spec.endpoints, spec.ca_pem
        if spec.emulator_control_url:
            proxy = delivery.control_proxy = ControlProxy(spec.emulator_control_url)
            app.mounts.append((proxy.handles, proxy))
        if settings.queue_url:
            store.outbox = True  # which the serving process relays to JetStream
        wakers.append(link.queued)
        monitoring.started(None, None)
        monitoring.rendered_elsewhere = link.scrape
        link.report = lambda: ApiReport(app.metrics, push.metrics, store.db.units, store.db.batches)
        freeze_startup_objects()
        link.ready()

    async def start() -> None:
        store.start()
        if parent is not None:
            await start_as_api_child(parent)
            return
        emulator_token_url: str | None = None
        if settings.emulate:
            delivery.endpoints, delivery.ca_pem, emulator_token_url = await start_emulators()
        else:
            emulator_token_url = settings.fcm_token_url
            if settings.provider_ca_file is not None:
                with open(settings.provider_ca_file) as f:
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
            view = delivery.worker or delivery.processes
            sender = WebhookSender(
                store.webhooks,
                webhook_networks,
                busy=lambda: view is not None and view.in_flight > 0,
            )
            delivery.webhook_task = asyncio.create_task(sender.run())
        monitoring.started(delivery.worker or delivery.processes, delivery.broker)
        if listening is not None and settings.api_processes > 1:
            await start_api_processes(listening)
        if listening is not None:
            scheme = "https" if settings.tls_cert else "http"
            host, port = listening.getsockname()[:2]
            log.info(
                "serving on %s://%s:%d: %d API process(es), %d delivery process(es)"
                " (Press CTRL+C to quit)",
                scheme,
                f"[{host}]" if ":" in host else host,
                port,
                settings.api_processes if settings.role != "worker" else 0,
                settings.workers if settings.role in DELIVERY_ROLES else 0,
            )
        freeze_startup_objects()

    async def stop() -> None:
        if monitoring.api_children is not None:  # first: they queue jobs and render through us
            await monitoring.api_children.stop()
        if delivery.worker is not None:  # first: handing jobs back needs the queue and broker
            await delivery.worker.stop(settings.shutdown_grace)
        if delivery.processes is not None:
            await delivery.processes.stop()
        for task in (delivery.task, delivery.relay_task, delivery.webhook_task):
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
        if delivery.control_proxy is not None:
            await delivery.control_proxy.aclose()
        if delivery.stored is not None:
            delivery.stored.close()
        await monitoring.aclose()
        store.close()
        if redis_limits is not None:
            await redis_limits.aclose()
        if table is not None:
            table.close()

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
        app.background.append(push.forget_old_keys)
        if settings.max_queue_depth:
            app.background.append(queue_watch.run)
    app.route("POST", "/api/v2/notification/user", targeted_push(push))
    app.route("POST", "/api/sdk/v1/session", keyed.sdk_key(partners, sdk.session))
    app.route("POST", "/api/sdk/v1/events", keyed.sdk_key(partners, stats.events))
    app.route("POST", "/api/v1/notification/get_statistics", stats.get_statistics)
    app.route("POST", "/api/message_center/v1", stats.message_center)
    app.route("GET", "/api/v1/campaigns", keyed.api_key(partners, keyed.answering(stats.campaigns)))
    app.route("GET", REPORT_PATH, keyed.api_key(partners, keyed.answering(stats.report)))
    app.route("POST", CANCEL_PATH, keyed.api_key(partners, keyed.answering(stats.cancel)))
    hooks = WebhookRoutes(store.webhooks, webhook_networks)
    dashboard = Dashboard(store, partners, stats.campaigns, stats.report, hooks.dashboard)
    app.route("GET", PREFIX, dashboard.page)
    app.route("GET", PREFIX + "/", dashboard.page)
    for method in ("GET", "POST", "DELETE"):
        app.route(method, PREFIX + "/session", dashboard.session)
    app.route_prefix("GET", PREFIX + "/static/", dashboard.static, PREFIX + "/static/{file}")
    app.route("GET", PREFIX + "/api/campaigns", dashboard.api("campaigns"))
    app.route("GET", PREFIX + "/api/webhook", dashboard.api("webhook"))
    app.route("GET", PREFIX + "/api/campaigns/{camp_id}/report", dashboard.api("report"))
    app.route("POST", "/api/user/v1/upsert", users.upsert_request, user_too_large)
    app.route("POST", "/api/user/v1/profile", users.handler(users.profile), user_too_large)
    app.route("POST", "/api/user/v1/delete", users.handler(users.delete), user_too_large)
    certificates = CertificateRoutes(
        store, partners, lambda: delivery.endpoints.hms_token_url, delivery.ssl_context
    )
    for provider in ("firebase", "apns", "huawei"):
        app.route("POST", f"/v1/settings/certificate/{provider}", certificates.handler(provider))
    app.route("PUT", WEBHOOK_PATH, keyed.api_key(partners, hooks.put))
    app.route("GET", WEBHOOK_PATH, keyed.api_key(partners, hooks.get))
    app.route("DELETE", WEBHOOK_PATH, keyed.api_key(partners, hooks.delete))
    app.route("POST", WEBHOOK_ROTATE_PATH, keyed.api_key(partners, hooks.rotate))
    app.route("GET", "/healthz", monitoring.healthz)
    app.route("GET", "/readyz", monitoring.readyz)
    app.route("GET", "/metrics", monitoring.metrics)
    app.route("GET", "/openapi.json", openapi_json)
    app.route("GET", "/docs", docs)
    return app
