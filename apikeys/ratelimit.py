"""Fixed-window counters in Django's cache, for refusing guessers without slowing down
honest callers.

Only failures are counted, so a caller's valid keys keep verifying while its guesses are
refused. When the cache is unreachable the limiter steps aside (and logs a warning):
verification itself never depends on the cache.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

logger = logging.getLogger("apikeys.ratelimit")


def record_failure(bucket: str, *, limit: int, window: int) -> int | None:
    """Count one failure in ``bucket``; past ``limit`` in the current ``window`` seconds,
    return how many seconds remain until the window resets, else None."""
    if limit <= 0 or window <= 0:
        return None
    now = time.time()
    start = int(now // window) * window
    key = f"apikeys:rl:{bucket}:{start}"
    try:
        cache.add(key, 0, timeout=window + 1)
        count = cache.incr(key)
    except Exception as exc:  # noqa: BLE001 - any cache failure must not break verification
        logger.warning("Rate-limit cache unavailable (%s); not limiting.", type(exc).__name__)
        return None
    if count > limit:
        return max(1, int(start + window - now + 0.999))
    return None
