"""Every name pushgate gives to something outside its process: Redis keys (and, later, broker
subjects). One place, so that operators can find them and deployments can prefix them."""

from __future__ import annotations

DEFAULT_REDIS_PREFIX = "pushgate:"


def rate_key(prefix: str, key: str) -> str:
    """GCRA state of one limit (`push:<partner>`, `advanced:<partner>`, `user:<partner>`)."""
    return f"{prefix}rate:{key}"


def bad_key_key(prefix: str, client: str) -> str:
    """Failed key checks from one client address (an IPv4 address, an IPv6 /64) in the current
    window; expires with the window (limits/bad_keys.py)."""
    return f"{prefix}badkey:{client}"


# NATS JetStream (PUSHGATE_QUEUE_URL=nats://...): one work-queue stream of job ids.
DEFAULT_STREAM_PREFIX = "PUSHGATE"


def jobs_stream(prefix: str) -> str:
    return f"{prefix}_JOBS"


def jobs_subject(prefix: str) -> str:
    return f"{prefix.lower()}.jobs"


JOBS_CONSUMER = "workers"  # the durable pull consumer every worker shares


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    """Where JetStream announces a message that reached its consumer's MaxDeliver."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"
