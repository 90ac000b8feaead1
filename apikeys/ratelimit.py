"""Sliding-window limits, shared by every worker and machine, on the ``limits`` library.

Who uses it: the failed-verification limiter of the verify endpoint, of the in-process key
authentication and of the token endpoint, and the password sign-in throttle
(:mod:`apikeys.signin`).

**Algorithm.** ``limits``' moving window: a log of the events of the last ``window``
seconds; an event is accepted only while fewer than ``limit`` lie in the window that ends
now. So no span of ``window`` seconds ever holds more than ``limit`` accepted events, however
the span lines up with the clock (a fixed window lets up to twice the limit through across a
boundary, and its count resets on the boundary, which also made tests flaky).

**Storage** (``APIKEYS["RATELIMIT_STORAGE"]``, environment ``APIKEYS_RATELIMIT_STORAGE``):

- empty (the default): Redis when the default cache is Redis (its URL), else the project's
  own database (:class:`apikeys.ratelimit_storage.DatabaseStorage`, table ``apikeys_ratelimithit``), so the embedded
  default (SQLite, local-memory cache) still counts across every gunicorn worker;
- or any ``limits`` storage URI: ``redis://…``, ``memory://`` (one process only: for tests
  that ask for it), ``apikeys-db://`` (the database storage named explicitly).

Why ``limits`` and not Django's cache: the moving window needs an atomic "count the window,
then add if below the limit", which ``limits`` does in one Lua script on Redis; Django's cache
API has no such operation, and its database cache's ``incr`` is a read then a write.
Why a storage of our own for the database: ``limits`` has none for SQL, and the embedded
default must be shared by processes without a server to install.

Failures of the storage: :func:`record_failure` steps aside (logs a warning, limits nothing:
verification never depends on it); :func:`hit` raises :class:`LimiterUnavailable` so that
password sign-in fails closed.
"""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

from apikeys import conf

if TYPE_CHECKING:
    from limits import RateLimitItemPerSecond
    from limits.storage import StorageTypes
    from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger("apikeys.ratelimit")

# Rows of windows longer than this are purged even if their key is never seen again
# (apikeys/checks.py refuses longer windows).
MAX_WINDOW_SECONDS = 24 * 3600


class LimiterUnavailable(Exception):
    """The limiter's storage cannot be reached."""


# --------------------------------------------------------------------------- storage


def storage_uri() -> str:
    """The configured storage, or the default: the cache's Redis, else the database."""
    configured = conf.get("RATELIMIT_STORAGE")
    if configured:
        return str(configured)
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION")
    if "redis" in str(cache.get("BACKEND", "")).lower() and location:
        return str(location[0] if isinstance(location, (list, tuple)) else location)
    return "apikeys-db://"


def storage(uri: str) -> StorageTypes:
    """The ``limits`` storage of ``uri`` (``apikeys-db://`` included). ``limits`` is imported
    at first use: a worker that never limits anything (no failed verification, no sign-in)
    does not carry it (1.7 MB of its RSS, measured)."""
    from limits.storage import storage_from_string

    from apikeys import ratelimit_storage  # noqa: F401 - registers apikeys-db://

    return storage_from_string(uri)


@lru_cache(maxsize=8)
def _limiter(uri: str) -> MovingWindowRateLimiter:
    from limits.strategies import MovingWindowRateLimiter

    return MovingWindowRateLimiter(storage(uri))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(storage_uri())


def _item(limit: int, window: int) -> RateLimitItemPerSecond:
    from limits import RateLimitItemPerSecond

    # The cache's key prefix keeps apart projects (and parallel test workers) sharing a Redis.
    namespace = "apikeys" + str(settings.CACHES.get("default", {}).get("KEY_PREFIX", ""))
    return RateLimitItemPerSecond(limit, window, namespace=namespace)


def retry_after(bucket: str, *, limit: int, window: int) -> int:
    """Whole seconds until ``bucket`` accepts an event again (at least 1). Raises
    :class:`LimiterUnavailable` if the storage fails."""
    try:
        stats = limiter().get_window_stats(_item(limit, window), bucket)
    except Exception as exc:
        raise LimiterUnavailable(type(exc).__name__) from exc
    return max(1, math.ceil(stats.reset_time - time.time()))


def hit(bucket: str, *, limit: int, window: int) -> bool:
    """Count one event in ``bucket``; False (and not counted) when ``limit`` events already lie
    in the last ``window`` seconds. Raises :class:`LimiterUnavailable` if the storage fails."""
    try:
        return bool(limiter().hit(_item(limit, window), bucket))
    except Exception as exc:
        raise LimiterUnavailable(type(exc).__name__) from exc


def test(bucket: str, *, limit: int, window: int) -> bool:
    """True while ``bucket`` would accept an event; counts nothing. Raises
    :class:`LimiterUnavailable` if the storage fails."""
    try:
        return bool(limiter().test(_item(limit, window), bucket))
    except Exception as exc:
        raise LimiterUnavailable(type(exc).__name__) from exc


def clear(bucket: str, *, limit: int, window: int) -> None:
    """Forget ``bucket``'s events. Raises :class:`LimiterUnavailable` if the storage fails."""
    try:
        limiter().clear(_item(limit, window), bucket)
    except Exception as exc:
        raise LimiterUnavailable(type(exc).__name__) from exc


def record_failure(bucket: str, *, limit: int, window: int) -> int | None:
    """Count one failure in ``bucket``; past ``limit`` in the last ``window`` seconds, return
    how many seconds until one more would be accepted, else None.

    When the storage is unreachable the limiter steps aside with a warning: what it guards
    (verification, token requests) must keep working without it."""
    if limit <= 0 or window <= 0:
        return None
    try:
        if hit(bucket, limit=limit, window=window):
            return None
        return retry_after(bucket, limit=limit, window=window)
    except LimiterUnavailable as exc:
        logger.warning("Rate-limit storage unavailable (%s); not limiting.", exc)
        return None
