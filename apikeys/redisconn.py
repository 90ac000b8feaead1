"""The Redis server of the default cache, for the app's own shared state.

:func:`client` (and :func:`line`, its fast lane for one command per request) is the one
way the app reaches it (the M2M token cache of
:mod:`apikeys.tokencache` uses it): a ``redis.Redis`` for the ``LOCATION`` of
``CACHES["default"]`` when that cache is Redis (Django's ``RedisCache`` or
django-redis), else ``None``. Rules:

- **No Redis, no client**: with the embedded default (local-memory cache) there is no
  server shared by every worker, so callers that need one keep their database path.
- **Found as** :func:`apikeys.ratelimit.storage_uri` **finds it**: the first ``LOCATION``
  of a cache whose ``BACKEND`` names Redis. Read once, and again after ``CACHES``
  changes, so ``override_settings`` works.
- **Short timeouts** (:data:`TIMEOUT`, connecting and reading): a caller falls back to the
  database rather than wait on a server that does not answer. Callers catch
  ``redis.RedisError``; nothing here retries.
- **One client per URL per process**: its connection pool is reset by redis-py itself in
  a forked worker (it checks the pid), so gunicorn's pre-fork model is safe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

#: Seconds to connect to and to wait for an answer from Redis before giving up.
TIMEOUT = 0.5


def url() -> str | None:
    """The default cache's Redis URL, or ``None`` when the default cache is not Redis.
    Read once per process, and again after ``CACHES`` changes (``override_settings``)."""
    found = _url
    if found is _UNREAD:
        found = _read_url()
        globals()["_url"] = found
    return found


def _read_url() -> str | None:
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION")
    if "redis" not in str(cache.get("BACKEND", "")).lower() or not location:
        return None
    return str(location[0] if isinstance(location, (list, tuple)) else location)


_UNREAD: Any = object()
_url: Any = _UNREAD


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _url
    if setting == "CACHES":
        _url = _UNREAD


def client() -> redis.Redis | None:
    """The client of the default cache's Redis (shared in this process), or ``None``."""
    found = url()
    return None if found is None else _client_for(found)


def line() -> Line | None:
    """This process's :class:`Line` to the default cache's Redis, or ``None``."""
    found = url()
    return None if found is None else _line_for(found)


@lru_cache(maxsize=4)
def _line_for(location: str) -> Line:
    return Line(_client_for(location))


@lru_cache(maxsize=4)
def _client_for(location: str) -> redis.Redis:
    return redis.Redis.from_url(
        location,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        health_check_interval=30,
    )


class Line:
    """A connection of its own, per thread, for the hot path's one command per request.

    redis-py's ``execute_command`` takes a connection from the pool and gives it back, with
    its retry wrapper and its metrics around every call: measured here, about a third of an
    ``EVALSHA``'s time in the worker. A web worker serves one request at a time per thread,
    so each thread keeps one connection and writes the packed command straight to it.
    Errors are redis-py's own (``redis.RedisError``); a connection that failed is closed by
    redis-py and opened again by the next call. A forked process opens its own.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()

    def call(self, *args: Any) -> Any:
        """Send one command and return its answer (an error answer raises)."""
        connection = self._connection()
        connection.send_packed_command(connection.pack_command(*args), check_health=False)
        return connection.read_response()

    def send(self, packed: bytes) -> Any:
        """Send one command already packed (:func:`pack_args`) and return its answer."""
        connection = self._connection()
        connection.send_packed_command([packed], check_health=False)
        return connection.read_response()

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.pid != os.getpid():
            connection = self._local.connection = self._pool.make_connection()
        return connection

    def evalsha(self, sha: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script by its SHA-1, sending its source once more after a NOSCRIPT (as
        after a Redis restart)."""
        try:
            return self.call("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return self.call("EVAL", source, len(keys), *keys, *args)

    def evalsha_packed(self, packed: bytes, source: str) -> Any:
        """Send a packed ``EVALSHA``; after a NOSCRIPT (as after a Redis restart), load the
        script and send it once more."""
        try:
            return self.send(packed)
        except redis.exceptions.NoScriptError:
            self.call("SCRIPT", "LOAD", source)
            return self.send(packed)


def pack_args(args: Sequence[Any]) -> bytes:
    """RESP bulk strings of ``args`` (str, bytes or int), without the array's header: what
    redis-py's ``pack_command`` makes of them, for a command packed in parts."""
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
