"""Which part of the infrastructure an exception says is away.

A request that fails because the database, Redis or the broker cannot be reached is answered
503 with `Retry-After` (api/app.py), not 500: nothing of it was stored (its transaction did not
commit), the client may send it again as it is, and the part is back in seconds to minutes (a
restart, a failover). `/readyz` names the part meanwhile. Anything else stays a 500. The
store's executors also read it: a batch that failed because the database is away is not run
again unit by unit (store/executor.py).

The exception types are matched by module and name, not imported: psycopg, redis and nats are
optional extras.
"""

from __future__ import annotations

RETRY_AFTER_SECONDS = 5

# (module prefix, exception class names) -> the part named in the answer
_AWAY: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "psycopg",
        frozenset({"OperationalError", "InterfaceError", "PoolTimeout", "PoolClosed"}),
        "database",
    ),
    ("redis", frozenset({"ConnectionError", "TimeoutError", "BusyLoadingError"}), "Redis"),
    (
        "nats",
        frozenset(
            {"ConnectionClosedError", "NoServersError", "TimeoutError", "StaleConnectionError"}
        ),
        "broker",
    ),
)


def unreachable(error: BaseException) -> str | None:
    """The part `error` (or an exception it was raised from) says cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for klass in type(current).__mro__:
            module = klass.__module__
            for prefix, names, part in _AWAY:
                if module.startswith(prefix) and klass.__name__ in names:
                    return part
        current = current.__cause__ or current.__context__
    return None
