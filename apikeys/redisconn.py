"""The Redis server of the default cache, for the app's own shared state.

:func:`client` is the one way the app reaches it (the M2M token cache of
:mod:`apikeys.tokencache` uses it): a ``redis.Redis`` for the ``LOCATION`` of
``CACHES["default"]`` when that cache is Redis (Django's ``RedisCache`` or
django-redis), else ``None``. Rules:

- **No Redis, no client**: with the embedded default (local-memory cache) there is no
  server shared by every worker, so callers that need one keep their database path.
- **Found as** :func:`apikeys.ratelimit.storage_uri` **finds it**: the first ``LOCATION``
  of a cache whose ``BACKEND`` names Redis. Read at use, so ``override_settings`` works.
- **Short timeouts** (:data:`TIMEOUT`, connecting and reading): a caller falls back to the
  database rather than wait on a server that does not answer. Callers catch
  ``redis.RedisError``; nothing here retries.
- **One client per URL per process**: its connection pool is reset by redis-py itself in
  a forked worker (it checks the pid), so gunicorn's pre-fork model is safe.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

#: Seconds to connect to and to wait for an answer from Redis before giving up.
TIMEOUT = 0.5


def url() -> str | None:
    """The default cache's Redis URL, or ``None`` when the default cache is not Redis."""
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION")
    if "redis" not in str(cache.get("BACKEND", "")).lower() or not location:
        return None
    return str(location[0] if isinstance(location, (list, tuple)) else location)


def client() -> redis.Redis | None:
    """The client of the default cache's Redis (shared in this process), or ``None``."""
    found = url()
    return None if found is None else _client_for(found)


@lru_cache(maxsize=4)
def _client_for(location: str) -> redis.Redis:
    return redis.Redis.from_url(
        location,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        health_check_interval=30,
    )
