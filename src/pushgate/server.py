"""Assembles the service: store, services, routes, background tasks."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from pushgate.api import openapi
from pushgate.api.app import App
from pushgate.api.http import Request, Response, json_response, text_response
from pushgate.api.push import targeted_push
from pushgate.api.sdk import SdkRoutes
from pushgate.api.users import UserRoutes
from pushgate.api.users import too_large as user_too_large
from pushgate.auth import PartnerCache
from pushgate.config import Settings
from pushgate.metrics import exposition
from pushgate.push_service import PushService
from pushgate.store.sqlite import SqliteStore


def create_app(settings: Settings) -> App:
    store = SqliteStore(settings.data_dir, settings.sqlite_synchronous)
    partners = PartnerCache(store.partner_by_secret)
    push = PushService(store, partners)
    users = UserRoutes(store, partners, push.rate)
    sdk = SdkRoutes(store, partners)
    app = App()
    doc = openapi.document()
    docs_html = openapi.docs_page(doc)

    async def start() -> None:
        store.start()
        if settings.emulate:
            await store.mark_emulated()

    async def stop() -> None:
        store.close()

    async def healthz(request: Request) -> Response:
        if not app.ready:
            return json_response(503, {"status": "starting"})
        return json_response(200, {"status": "ok"})

    async def metrics(request: Request) -> Response:
        gauges = {
            "pushgate_queue_depth": (
                "Delivery jobs queued or leased",
                float(await store.queue.depth()),
            ),
            "pushgate_sqlite_commits": (
                "Group commits of the SQLite writer",
                float(store.db.batches),
            ),
            "pushgate_sqlite_units": (
                "Units of work the SQLite writer committed",
                float(store.db.units),
            ),
        }
        return Response(200, exposition(app.metrics, gauges), CONTENT_TYPE_LATEST.encode())

    async def openapi_json(request: Request) -> Response:
        return json_response(200, doc)

    async def docs(request: Request) -> Response:
        return text_response(200, docs_html, b"text/html; charset=utf-8")

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.background.append(push.run_async_requests)
    app.route("POST", "/api/v2/notification/user", targeted_push(push))
    app.route("POST", "/api/sdk/v1/session", sdk.session)
    app.route("POST", "/api/user/v1/upsert", users.handler(users.upsert), user_too_large)
    app.route("POST", "/api/user/v1/profile", users.handler(users.profile), user_too_large)
    app.route("POST", "/api/user/v1/delete", users.handler(users.delete), user_too_large)
    app.route("GET", "/healthz", healthz)
    app.route("GET", "/openapi.json", openapi_json)
    app.route("GET", "/docs", docs)
    app.route("GET", "/metrics", metrics)
    return app
