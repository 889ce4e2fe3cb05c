"""The one reading of a `Retry-After` header, for the provider clients (APNs, FCM, HMS answers)
and for `pushgate.client` (this service's own 429 and 503).

RFC 9110 §10.2.3: delay-seconds (a non-negative integer) or an HTTP-date, always GMT (the
obsolete asctime form names no zone, so a date without one is read as GMT too). A decimal
fraction ("1.5") is not delay-seconds, but what it asks is clear, and providers.md says never
to retry sooner than Retry-After: it is rounded up to whole seconds rather than ignored (ignored,
the caller's own backoff could retry sooner). Anything else (a sign, an exponent, "soon", an
unparseable date) is as if the header were absent: None, and the caller backs off as usual.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import UTC

_DELAY_SECONDS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait: never negative (a date in the past means now); None when absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    if _DECIMAL.fullmatch(value):
        return float(math.ceil(float(value)))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
