"""The OpenAPI document (/openapi.json) and a self-contained page that renders it (/docs).

Request and answer schemas come from the same msgspec types that decode the requests and
encode the answers (`pushgate.wire`), so the description cannot drift from the code. No CDN:
the page is plain HTML.
"""

from __future__ import annotations

import copy
import html
from typing import Any

import msgspec

from pushgate import __version__
from pushgate.api import admission
from pushgate.targeting.schema import TargetedPushRequest
from pushgate.wire import (
    AsyncAccepted,
    CampaignCancelled,
    CampaignPage,
    CampaignReport,
    CertificateResult,
    Deleted,
    ErrorBody,
    EventsResult,
    HealthStatus,
    MessageCenterEntry,
    Profile,
    ReadyStatus,
    SessionResult,
    Statistics,
    TargetedPushResponse,
    UpsertResult,
)
from pushgate.wire.webhooks import WebhookAnswer, WebhookRequest, WebhookStatus

# Every type the document names, in one call, so that they share one set of components.
_TYPES: tuple[Any, ...] = (
    TargetedPushRequest,
    ErrorBody,
    TargetedPushResponse,
    AsyncAccepted,
    SessionResult,
    EventsResult,
    UpsertResult,
    Profile,
    Deleted,
    CertificateResult,
    HealthStatus,
    ReadyStatus,
    Statistics,
    list[MessageCenterEntry],
    CampaignPage,
    CampaignReport,
    CampaignCancelled,
    WebhookRequest,
    WebhookAnswer,
    WebhookStatus,
)
_SCHEMAS, COMPONENTS = msgspec.json.schema_components(
    _TYPES, ref_template="#/components/schemas/{name}"
)
SCHEMA: dict[Any, dict[str, Any]] = dict(zip(_TYPES, _SCHEMAS, strict=True))
# The user data API's and the credential uploads' errors carry no message: one Struct for both.
ERROR = PLAIN_ERROR = SCHEMA[ErrorBody]
ANY_OBJECT = {"type": "object", "additionalProperties": True}
# docs/api.md, "Idempotency keys": a retried request answered as the first was.
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[ -~]{1,255}$"},
}
# Every endpoint that takes a key: a client address over its allowance of bad keys
# (limits/bad_keys.py) gets this family's 429 until its window ends.
BAD_KEYS = ("429", "Too many bad keys from this address (see Retry-After)")
NOT_ALLOWED = ("403", "Address not allowed for this key")
# Every endpoint but the health ones: the service is full (api/admission.py).
OVERLOADED = {
    "description": "Overloaded: nothing was done; send again after Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}},
    "content": {"application/json": {"schema": ERROR}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(schema: dict[str, Any], *statuses: tuple[str, str]) -> dict[str, Any]:
    return {code: _json(schema, text) for code, text in statuses}


KEYED_ERRORS = {
    "409": _json(ERROR, "A request with this Idempotency-Key is in progress (Retry-After: 1)"),
    "422": _json(ERROR, "This Idempotency-Key was used with another body"),
}


def document() -> dict[str, Any]:
    push_ref = SCHEMA[TargetedPushRequest]
    user_headers = [
        {"name": "X-PARTNER-NAME", "in": "header", "required": True, "schema": {"type": "string"}},
        {"name": "X-REQUEST-TOKEN", "in": "header", "required": True, "schema": {"type": "string"}},
    ]
    user_errors = _errors(
        PLAIN_ERROR,
        ("400", "Malformed request"),
        ("403", "Bad partner name or token"),
        ("413", "Body over 5,000,000 bytes"),
        ("429", "Too many requests"),
    )
    paths: dict[str, Any] = {
        "/api/v2/notification/user": {
            "post": {
                "summary": "Send targeted app pushes (Insider Targeted Push API)",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": push_ref}},
                },
                "responses": {
                    "200": _json(
                        SCHEMA[TargetedPushResponse],
                        "Per-user results; every listed success is durably queued",
                    ),
                    "202": _json(SCHEMA[AsyncAccepted], "Async request accepted"),
                    **_errors(
                        ERROR,
                        ("400", "Invalid request"),
                        ("401", "Bad API key"),
                        ("403", "Address not allowed for this key"),
                        ("413", "Body over 5,000,000 bytes"),
                        ("429", "Rate limit exceeded (see Retry-After)"),
                    ),
                    **KEYED_ERRORS,
                },
            }
        },
        "/api/sdk/v1/session": {
            "post": {
                "summary": "Register or refresh a device (mobile SDK)",
                "parameters": [
                    {
                        "name": "X-SDK-KEY",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ANY_OBJECT}},
                },
                "responses": {
                    "200": _json(SCHEMA[SessionResult], "Profile id"),
                    **_errors(ERROR, ("400", "Invalid session"), ("401", "Bad SDK key"), BAD_KEYS),
                },
            }
        },
        "/api/user/v1/upsert": {
            "post": {
                "summary": "Create or update user profiles (at most 1,000 per request)",
                "parameters": [*user_headers, IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ANY_OBJECT}},
                },
                "responses": {
                    "200": _json(SCHEMA[UpsertResult], "Counts of successful and failed users"),
                    **user_errors,
                    **KEYED_ERRORS,
                },
            }
        },
        "/api/user/v1/profile": {
            "post": {
                "summary": "Read a profile by its identifiers",
                "parameters": user_headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ANY_OBJECT}},
                },
                "responses": {
                    "200": _json(SCHEMA[Profile], "The profile"),
                    "404": _json(PLAIN_ERROR, "No such user"),
                    **user_errors,
                },
            }
        },
        "/api/user/v1/delete": {
            "post": {
                "summary": "Erase a profile with its devices",
                "parameters": user_headers,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ANY_OBJECT}},
                },
                "responses": {"200": _json(SCHEMA[Deleted], "Erased"), **user_errors},
            }
        },
        **{
            f"/v1/settings/certificate/{provider}": {
                "post": {
                    "summary": summary,
                    "parameters": [
                        {
                            "name": "X-API-KEY",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ANY_OBJECT}},
                    },
                    "responses": {
                        "200": _json(SCHEMA[CertificateResult], "Validated and in use"),
                        **_errors(
                            PLAIN_ERROR,
                            ("400", "No api key provided"),
                            ("403", "Invalid api key, or address not allowed for this key"),
                        ),
                        **_errors(ERROR, BAD_KEYS),
                        "406": _json(ERROR, "Not usable: kept, but not used"),
                    },
                }
            }
            for provider, summary in (
                ("firebase", "Upload the Firebase service-account JSON (Android, FCM v1)"),
                (
                    "apns",
                    "Upload an APNs .p8 token key (key_id, team_id, bundle_id) or a .p12 certificate",
                ),
                (
                    "huawei",
                    "Upload the HMS app id, client id and client secret, with an optional default"
                    " category and importance",
                ),
            )
        },
        **statistics_paths(),
        **health_paths(),
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json(ANY_OBJECT, "OpenAPI")}}
        },
    }
    for path, operations in paths.items():
        if path not in admission.EXEMPT and path != "/openapi.json":
            for operation in operations.values():
                operation["responses"].setdefault("503", OVERLOADED)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pushgate", "version": __version__},
        "paths": paths,
        # A copy: a reader of the document may change it, the next document stays the same.
        "components": {"schemas": copy.deepcopy(COMPONENTS)},
    }


def health_paths() -> dict[str, Any]:
    """docs/operations.md, "Monitoring": liveness for restarts, readiness for load balancers."""
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness: the process serves requests (nothing else is checked)",
                "responses": {
                    "200": _json(SCHEMA[HealthStatus], "Serving: `ok`"),
                    "503": _json(SCHEMA[HealthStatus], "Starting: `starting`"),
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the store answers, the queue and Redis (when configured)"
                " are reachable; each checked within one second",
                "responses": {
                    "200": _json(SCHEMA[ReadyStatus], "Ready: `ready`"),
                    "503": {
                        **_json(
                            SCHEMA[ReadyStatus],
                            "Not ready (`unavailable`): send no traffic here for now; `failing`"
                            " names the checks that failed within their second (`store`,"
                            " `queue`, `redis`), or `service`: the process is starting or"
                            " stopping",
                        ),
                        "headers": retry_after,
                    },
                },
            }
        },
    }


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


INTEGER = {"type": "integer"}
STRING = {"type": "string"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
DATE_TIME = {"type": "string", "format": "date-time"}


def statistics_paths() -> dict[str, Any]:
    """docs/statistics.md: the Insider-compatible reads, pushgate's report and list, app events."""
    own_errors = _errors(
        ERROR, ("400", "Invalid parameter"), ("401", "Bad API key"), NOT_ALLOWED, BAD_KEYS
    )
    text_error = {"text/plain": {"schema": STRING}}
    return {
        "/api/v1/notification/get_statistics": {
            "post": {
                "summary": "Statistics of today's campaigns (Insider Statistics API)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _object(["api_key"], api_key=STRING)}
                    },
                },
                "responses": {
                    "200": _json(SCHEMA[Statistics], "Campaigns first used since 00:00 UTC today"),
                    "400": _json(ERROR, "Body is not JSON"),
                    "401": _json(PLAIN_ERROR, "Bad Api Key."),
                    **_errors(ERROR, NOT_ALLOWED, BAD_KEYS),
                },
            }
        },
        "/api/message_center/v1": {
            "post": {
                "summary": "Pushes sent to one user, newest first (Insider Message Center)",
                "parameters": [_header("X-INSIDER-API-KEY")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _object(
                                ["identifiers"],
                                identifiers=STRING_MAP,
                                start_date=INTEGER,
                                end_date=INTEGER,
                                limit={"type": "integer", "minimum": 1, "maximum": 100},
                            )
                        }
                    },
                },
                "responses": {
                    "200": _json(SCHEMA[list[MessageCenterEntry]], "The user's pushes"),
                    "400": {"description": "bad payload / bad limit", "content": text_error},
                    "401": {"description": "Bad API key", "content": text_error},
                    "403": {"description": NOT_ALLOWED[1], "content": text_error},
                    "429": {"description": BAD_KEYS[1], "content": text_error},
                },
            }
        },
        "/api/sdk/v1/events": {
            "post": {
                "summary": "Report that pushes arrived (push_delivered) or were opened (push_session)",
                "parameters": [_header("X-SDK-KEY")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _object(
                                ["insider_id", "events"],
                                insider_id=STRING,
                                events={
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 1000,
                                    "items": _object(
                                        ["event_name", "camp_id"],
                                        event_name={
                                            "type": "string",
                                            "enum": ["push_delivered", "push_session"],
                                        },
                                        camp_id=INTEGER,
                                        timestamp=DATE_TIME,
                                    ),
                                },
                            )
                        }
                    },
                },
                "responses": {
                    "200": _json(SCHEMA[EventsResult], "Counted once per user and campaign"),
                    **_errors(
                        ERROR,
                        ("400", "Invalid events"),
                        ("401", "Bad SDK key"),
                        ("404", "No user with that insider_id"),
                        BAD_KEYS,
                    ),
                },
            }
        },
        "/api/v1/campaigns": {
            "get": {
                "summary": "Campaigns, newest first, with their funnel totals",
                "parameters": [
                    _header("X-API-KEY"),
                    *(
                        # An empty value means the default (docs/statistics.md: `?from=&to=`).
                        {
                            "name": name,
                            "in": "query",
                            "required": False,
                            "allowEmptyValue": True,
                            "schema": schema,
                        }
                        for name, schema in (
                            ("from", STRING),
                            ("to", STRING),
                            ("page", {"type": "integer", "minimum": 1, "maximum": 1_000_000}),
                            ("per_page", {"type": "integer", "minimum": 1, "maximum": 200}),
                        )
                    ),
                ],
                "responses": {
                    "200": _json(SCHEMA[CampaignPage], "One page of campaigns"),
                    **own_errors,
                },
            }
        },
        "/api/v1/campaigns/{camp_id}/report": {
            "get": {
                "summary": "A campaign's funnel, platform split, fail records and hourly series",
                "parameters": [
                    _header("X-API-KEY"),
                    {"name": "camp_id", "in": "path", "required": True, "schema": INTEGER},
                ],
                "responses": {
                    "200": _json(SCHEMA[CampaignReport], "The report"),
                    **own_errors,
                    "404": _json(ERROR, "No such campaign"),
                },
            }
        },
        "/api/v1/campaigns/{camp_id}/cancel": {
            "post": {
                "summary": "Cancel every push of a campaign not yet handed to a provider",
                "description": "They end as failed `Cancelled` in the campaign's statistics;"
                " pushes already handed to a provider are not recalled.",
                "parameters": [
                    _header("X-API-KEY"),
                    {"name": "camp_id", "in": "path", "required": True, "schema": INTEGER},
                ],
                "responses": {
                    "200": _json(SCHEMA[CampaignCancelled], "How many pushes were cancelled"),
                    **own_errors,
                    "404": _json(ERROR, "No such campaign"),
                },
            }
        },
        **webhook_paths(own_errors),
    }


def webhook_paths(own_errors: dict[str, Any]) -> dict[str, Any]:
    """The partner's webhook (docs/api.md, "Webhooks")."""
    key = [_header("X-API-KEY")]
    none = {"404": _json(ERROR, "The partner has no webhook")}
    secret = _json(SCHEMA[WebhookAnswer], "The webhook and its new secret")
    return {
        "/api/v1/webhook": {
            "put": {
                "summary": "Register the webhook (or change its URL and events)",
                "parameters": key,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": SCHEMA[WebhookRequest]}},
                },
                "responses": {
                    "200": _json(
                        SCHEMA[WebhookAnswer],
                        "Created (with its secret), or changed (its secret kept and not shown)",
                    ),
                    **own_errors,
                },
            },
            "get": {
                "summary": "The webhook, whether it is enabled, and its last error",
                "parameters": key,
                "responses": {
                    "200": _json(SCHEMA[WebhookStatus], "The webhook"),
                    **own_errors,
                    **none,
                },
            },
            "delete": {
                "summary": "Remove the webhook and the events waiting for it",
                "parameters": key,
                "responses": {"204": {"description": "Removed"}, **own_errors, **none},
            },
        },
        "/api/v1/webhook/rotate-secret": {
            "post": {
                "summary": "A new secret for the webhook",
                "parameters": key,
                "responses": {"200": secret, **own_errors, **none},
            }
        },
    }


def docs_page(doc: dict[str, Any]) -> str:
    """A readable listing of every endpoint, rendered on the server."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>pushgate API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:.1em .3em}pre{padding:1em;overflow:auto}"
        "h2{border-top:1px solid #ddd;padding-top:1em}.m{font-weight:bold;color:#0a5}</style></head><body>",
        f"<h1>pushgate API {html.escape(doc['info']['version'])}</h1>",
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>",
    ]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            parts.append(
                f"<h2><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('summary', ''))}</p><ul>"
            )
            for param in op.get("parameters", []):
                where = html.escape(param["in"])
                parts.append(f"<li>{where} <code>{html.escape(param['name'])}</code></li>")
            for status, response in op.get("responses", {}).items():
                parts.append(f"<li><b>{status}</b> {html.escape(response['description'])}</li>")
            parts.append("</ul>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        body = html.escape(msgspec.json.format(msgspec.json.encode(schema)).decode())
        parts.append(f"<h3 id={html.escape(name)}>{html.escape(name)}</h3><pre>{body}</pre>")
    parts.append("</body></html>")
    return "".join(parts)
