"""Settings: flags first, then PUSHGATE_* environment variables, then defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

N = TypeVar("N", int, float)

ENV_PREFIX = "PUSHGATE_"
WORKERS_ENV = "WORKERS"  # PUSHGATE_WORKERS: delivery processes (`serve --workers`)
API_PROCESSES_ENV = "API_PROCESSES"  # PUSHGATE_API_PROCESSES: `serve --api-processes`
MAX_PROCESSES = 256
CONCURRENCY_ENV = "WORKER_CONCURRENCY"  # PUSHGATE_WORKER_CONCURRENCY: jobs a worker holds
MAX_CONCURRENCY = 10_000
MAX_DATABASE_POOL = 64
DELIVERY_ROLES = ("all", "worker")
API_ROLES = ("all", "api")
ROLES = ("all", "api", "worker")
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LOG_FORMATS = ("auto", "json", "text")


class ConfigError(ValueError):
    """A setting that cannot be used; its message is the one line the operator sees (the
    `pushgate` command prints it as `Error: ...` and exits with status 2: cli.py)."""


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _number(kind: type[N], name: str, default: N) -> N:
    raw = env(name)
    if raw is None or not raw.strip():
        return default
    try:
        return kind(raw.strip())
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{ENV_PREFIX}{name} must be {noun}, not {raw!r}") from None


def _count(name: str, default: int, top: int) -> int:
    """PUSHGATE_<name>: a whole number from 1 to `top`; unset: `default`."""
    value = _number(int, name, default)
    if not 1 <= value <= top:
        raise ConfigError(f"{ENV_PREFIX}{name} must be from 1 to {top}, not {value}")
    return value


def _switch(name: str, default: bool) -> bool:
    """PUSHGATE_<name>: on (1, true, yes, on) or off (0, false, no, off); unset: `default`."""
    raw = (env(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{ENV_PREFIX}{name} must be on or off, not {raw!r}")


def _choice(name: str, default: str, choices: tuple[str, ...], case: str = "lower") -> str:
    """PUSHGATE_<name>: one of `choices` (compared in their case); unset: `default`."""
    raw = (env(name) or "").strip()
    if not raw:
        return default
    value = raw.upper() if case == "upper" else raw.lower()
    if value not in choices:
        raise ConfigError(f"{ENV_PREFIX}{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value


def _positive(name: str, default: float) -> float:
    """PUSHGATE_<name>: a number above 0; unset: `default`."""
    value = _number(float, name, default)
    if value <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be above 0, not {value:g}")
    return value


def _networks(name: str) -> tuple[str, ...]:
    """PUSHGATE_<name>: comma-separated CIDRs (an address alone is its own network)."""
    found: list[str] = []
    for part in (env(name) or "").split(","):
        if not part.strip():
            continue
        try:
            found.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise ConfigError(
                f"{ENV_PREFIX}{name} must be comma-separated networks (CIDR), not {part.strip()!r}"
            ) from None
    return tuple(found)


def _text(name: str) -> str | None:
    """PUSHGATE_<name>, or None when unset or empty."""
    return (env(name) or "").strip() or None


def os_reason(error: OSError) -> str:
    """An OS error as the end of a one-line message: `no such file or directory`."""
    return (error.strerror or str(error)).lower()


def check_port(source: str, port: int) -> int:
    """A port to listen on (0: any free one); `source` names the flag or variable."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source} must be from 0 to 65535, not {port}")
    return port


def usable_data_dir(path: Path) -> Path:
    """The data dir, created if missing; a ConfigError when it cannot be (a regular file on its
    path, no permission) or this user cannot read and write it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        reason = "it is a file, not a directory"
    except OSError as error:
        reason = os_reason(error)
    else:
        if os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return path
        reason = "permission denied"
    raise ConfigError(
        f"the data dir {str(path)!r} cannot be used: {reason} (--data-dir or {ENV_PREFIX}DATA_DIR)"
    )


def default_api_processes(role: str) -> int:
    """API processes: every core with `--role api`; half of them with `--role all`, the other
    half delivering (on two cores: one of each, API and delivery sharing the serving process)."""
    cores = os.cpu_count() or 1
    return cores if role == "api" else max(1, cores // 2)


def default_workers(api_processes: int) -> int:
    """One delivery process per core left by the API processes (with `--role worker`: every
    core but one, left to the API on another machine's behalf or the database)."""
    return max(1, (os.cpu_count() or 1) - api_processes)


def count_setting(flag: int | None, flag_name: str, env_name: str, default: int) -> int:
    """A number of processes: the flag, else PUSHGATE_<env_name>, else `default`."""
    if flag is not None:
        value: object = flag
        source = flag_name
    else:
        raw = env(env_name)
        if raw is None or not raw.strip():
            return default
        value, source = raw.strip(), ENV_PREFIX + env_name
    try:
        count = int(str(value))
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_PROCESSES:
        raise ConfigError(
            f"{source} must be a whole number from 1 to {MAX_PROCESSES}, not {str(value)!r}"
        )
    return count


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
    # PostgreSQL connections of the serving process, each with the thread that runs units of
    # work on it (store/postgres.py). Fewer threads contend less for the GIL and commit more
    # units together (bench/README.md, "PostgreSQL pool size"); more let slow reads (campaign
    # reports) run beside the pushes.
    database_pool: int = 8
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
    # Days a finished delivery job (token and payload) is kept; 0: forever (queue/retention.py).
    job_retention_days: float = 7.0
    # Delivery processes (docs/operations.md): 1 delivers in this process; more run in child
    # processes of this one. `load` defaults it to the cores the API leaves (`default_workers`).
    workers: int = 1
    # Processes serving the HTTP API on the one listening socket (api_processes.py): this one
    # and `api_processes - 1` children. `load` defaults it by core count and role.
    api_processes: int = 1
    # Jobs one worker holds at most (claimed, not yet recorded): enough for the provider's
    # round trip at the rate wanted (docs/operations.md, "Sizing").
    worker_concurrency: int = 256
    # With --emulate: the emulators in a child process (emulators/child.py) rather than on this
    # process's event loop. `load` turns it on where there is more than one core.
    emulator_process: bool = False
    # Provider hosts in place of the real ones (an emulator elsewhere, a test's sink); None: the
    # provider's own (providers/senders.py: Endpoints).
    apns_url: str | None = None
    apns_sandbox_url: str | None = None
    fcm_url: str | None = None
    hms_url: str | None = None
    hms_token_url: str | None = None
    fcm_token_url: str | None = None  # where FCM access tokens are obtained, for every account
    provider_ca_file: Path | None = None  # a CA to trust for provider hosts besides the system's
    access_log: bool = True
    # How long an Idempotency-Key's answer is replayed (contract.md: 30 days).
    idempotency_hours: float = 720.0
    # Networks a webhook may reach besides public addresses (CIDRs; http:// too for them).
    webhook_allow_networks: tuple[str, ...] = ()
    log_format: str = "auto"  # json | text | auto: text on a terminal, else JSON (logs.py)

    def provider_urls(self) -> dict[str, str]:
        """The provider hosts given in place of the real ones, as `Endpoints` fields."""
        given = {
            "apns_url": self.apns_url,
            "apns_sandbox_url": self.apns_sandbox_url,
            "fcm_url": self.fcm_url,
            "hms_url": self.hms_url,
            "hms_token_url": self.hms_token_url,
        }
        return {name: url for name, url in given.items() if url}

    @classmethod
    def load(cls, **flags: object) -> Settings:
        """Flags given as non-None override the environment, which overrides defaults."""
        values: dict[str, object] = {
            "data_dir": Path(env("DATA_DIR") or cls.data_dir),
            "host": env("HOST") or cls.host,
            "port": _number(int, "PORT", cls.port),
            "emulate": _switch("EMULATE", cls.emulate),
            "tls_cert": Path(p) if (p := env("TLS_CERT")) else None,
            "tls_key": Path(p) if (p := env("TLS_KEY")) else None,
            "sqlite_synchronous": _choice(
                "SQLITE_SYNCHRONOUS", cls.sqlite_synchronous, SQLITE_SYNCHRONOUS, "upper"
            ),
            "log_level": _choice("LOG_LEVEL", cls.log_level, LOG_LEVELS),
            "role": _choice("ROLE", cls.role, ROLES),
            "forwarded_allow_ips": env("FORWARDED_ALLOW_IPS") or cls.forwarded_allow_ips,
            "database_url": env("DATABASE_URL") or None,
            "database_pool": _count("DATABASE_POOL", cls.database_pool, MAX_DATABASE_POOL),
            "redis_url": env("REDIS_URL") or None,
            "redis_prefix": env("REDIS_PREFIX") or cls.redis_prefix,
            "queue_url": env("QUEUE_URL") or None,
            "queue_prefix": env("QUEUE_PREFIX") or cls.queue_prefix,
            "campaign_stats": _switch("CAMPAIGN_STATS", cls.campaign_stats),
            "bad_key_limit": _number(int, "BAD_KEY_LIMIT", cls.bad_key_limit),
            "bad_key_window": _number(int, "BAD_KEY_WINDOW", cls.bad_key_window),
            "bad_key_exempt": env("BAD_KEY_EXEMPT", cls.bad_key_exempt),
            "max_requests": _number(int, "MAX_REQUESTS", cls.max_requests),
            "max_request_mb": _number(int, "MAX_REQUEST_MB", cls.max_request_mb),
            "max_store_backlog": _number(int, "MAX_STORE_BACKLOG", cls.max_store_backlog),
            "max_queue_depth": _number(int, "MAX_QUEUE_DEPTH", cls.max_queue_depth),
            "shutdown_grace": _number(float, "SHUTDOWN_GRACE", cls.shutdown_grace),
            "job_retention_days": _number(float, "JOB_RETENTION_DAYS", cls.job_retention_days),
            "worker_concurrency": _count(CONCURRENCY_ENV, cls.worker_concurrency, MAX_CONCURRENCY),
            "emulator_process": _switch("EMULATOR_PROCESS", (os.cpu_count() or 1) > 1),
            "apns_url": _text("APNS_URL"),
            "apns_sandbox_url": _text("APNS_SANDBOX_URL"),
            "fcm_url": _text("FCM_URL"),
            "hms_url": _text("HMS_URL"),
            "hms_token_url": _text("HMS_TOKEN_URL"),
            "fcm_token_url": _text("FCM_TOKEN_URL"),
            "provider_ca_file": Path(p) if (p := _text("PROVIDER_CA_FILE")) else None,
            "access_log": _switch("ACCESS_LOG", cls.access_log),
            "webhook_allow_networks": _networks("WEBHOOK_ALLOW_NETWORKS"),
            "idempotency_hours": _positive("IDEMPOTENCY_HOURS", cls.idempotency_hours),
            "log_format": _choice("LOG_FORMAT", cls.log_format, LOG_FORMATS),
        }
        workers_flag = flags.pop("workers", None)
        api_flag = flags.pop("api_processes", None)
        values.update({k: v for k, v in flags.items() if v is not None})
        check_port(
            "--port" if flags.get("port") is not None else f"{ENV_PREFIX}PORT",
            int(str(values["port"])),
        )
        role = str(values["role"])
        if workers_flag is not None and role not in DELIVERY_ROLES:
            raise ConfigError(f"--workers needs --role worker or all, not {role}")
        if api_flag is not None and role not in API_ROLES:
            raise ConfigError(f"--api-processes needs --role api or all, not {role}")
        api_processes = 1
        if role in API_ROLES:
            api_processes = count_setting(
                api_flag if isinstance(api_flag, int) else None,
                "--api-processes",
                API_PROCESSES_ENV,
                default_api_processes(role),
            )
        values["api_processes"] = api_processes
        values["workers"] = count_setting(
            workers_flag if isinstance(workers_flag, int) else None,
            "--workers",
            WORKERS_ENV,
            default_workers(api_processes),
        )
        if api_processes > 1 and values["emulate"] and not values["emulator_process"]:
            raise ConfigError(
                f"{ENV_PREFIX}EMULATOR_PROCESS=off needs --api-processes 1: the emulators'"
                " routes are served by every API process, from the emulators' own process"
            )
        return cls(**values)  # type: ignore[arg-type]
