"""Settings: flags first, then PUSHGATE_* environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "PUSHGATE_"


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./pushgate-data")
    host: str = "127.0.0.1"
    port: int = 8080
    emulate: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # FULL survives power loss; NORMAL (WAL) survives a killed process, which is
    # the promise the service makes by default (see docs/durability.md).
    sqlite_synchronous: str = "NORMAL"
    log_level: str = "info"
    role: str = "all"  # api | worker | all
    forwarded_allow_ips: str = ""  # load balancers whose X-Forwarded-For is trusted
    database_url: str | None = None  # postgresql://...; none: SQLite in the data dir
    redis_url: str | None = None  # redis://...; none: limits and caps in process / database
    redis_prefix: str = "pushgate:"  # of every Redis key (pushgate/names.py)
    queue_url: str | None = None  # nats://...: JetStream carries the jobs (docs/queue.md)
    queue_prefix: str = "PUSHGATE"  # of the stream and subject names
    # Campaign counters of the API and workers (docs/statistics.md); off only to measure their cost.
    campaign_stats: bool = True
    # Failed key checks one client address may make per window before every key it sends is
    # answered 429 until the window ends (limits/bad_keys.py); 0 turns the check off.
    bad_key_limit: int = 20
    bad_key_window: int = 60  # seconds
    bad_key_exempt: str = "127.0.0.0/8,::1"  # addresses whose bad keys are not counted
    # Load shedding (api/admission.py): bounds past which requests are answered 503 at once.
    max_requests: int = 1024  # handled at once by one process
    max_request_mb: int = 256  # bodies held at once by one process
    max_store_backlog: int = 4096  # units waiting for the database
    max_queue_depth: int = 10_000_000  # jobs waiting for delivery; 0: no bound
    # Seconds that sends under way get to finish on SIGTERM before being handed back, and that
    # requests under way get to be answered (each; docs/operations.md).
    shutdown_grace: float = 10.0
    # Days a finished delivery job (token and payload) is kept; 0: forever (delivery/retention.py).
    job_retention_days: float = 7.0

    @classmethod
    def load(cls, **flags: object) -> Settings:
        """Flags given as non-None override the environment, which overrides defaults."""
        values: dict[str, object] = {
            "data_dir": Path(env("DATA_DIR") or cls.data_dir),
            "host": env("HOST") or cls.host,
            "port": int(env("PORT") or cls.port),
            "emulate": (env("EMULATE") or "").lower() in ("1", "true", "yes"),
            "tls_cert": Path(p) if (p := env("TLS_CERT")) else None,
            "tls_key": Path(p) if (p := env("TLS_KEY")) else None,
            "sqlite_synchronous": (env("SQLITE_SYNCHRONOUS") or cls.sqlite_synchronous).upper(),
            "log_level": env("LOG_LEVEL") or cls.log_level,
            "role": env("ROLE") or cls.role,
            "forwarded_allow_ips": env("FORWARDED_ALLOW_IPS") or cls.forwarded_allow_ips,
            "database_url": env("DATABASE_URL") or None,
            "redis_url": env("REDIS_URL") or None,
            "redis_prefix": env("REDIS_PREFIX") or cls.redis_prefix,
            "queue_url": env("QUEUE_URL") or None,
            "queue_prefix": env("QUEUE_PREFIX") or cls.queue_prefix,
            "campaign_stats": (env("CAMPAIGN_STATS") or "on").lower() not in ("0", "off", "false"),
            "bad_key_limit": int(env("BAD_KEY_LIMIT") or cls.bad_key_limit),
            "bad_key_window": int(env("BAD_KEY_WINDOW") or cls.bad_key_window),
            "bad_key_exempt": env("BAD_KEY_EXEMPT", cls.bad_key_exempt),
            "max_requests": int(env("MAX_REQUESTS") or cls.max_requests),
            "max_request_mb": int(env("MAX_REQUEST_MB") or cls.max_request_mb),
            "max_store_backlog": int(env("MAX_STORE_BACKLOG") or cls.max_store_backlog),
            "max_queue_depth": int(env("MAX_QUEUE_DEPTH") or cls.max_queue_depth),
            "shutdown_grace": float(env("SHUTDOWN_GRACE") or cls.shutdown_grace),
            "job_retention_days": float(env("JOB_RETENTION_DAYS") or cls.job_retention_days),
        }
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
