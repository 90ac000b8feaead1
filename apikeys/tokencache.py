"""A per-worker cache of valid M2M access tokens, invalidated at once through Redis.

Without it every Management API request costs django-oauth-toolkit's check: an oauthlib
request object and a query over the token, its application and grant (about 1 ms of CPU).
With it a token already seen by this worker costs one Redis round trip and no query.

**Only with Redis.** :func:`enabled` is true only when the default cache is Redis
(:mod:`apikeys.redisconn`): a per-worker cache needs an invalidation every worker of every
machine sees. Without Redis (the embedded default) nothing is cached and the database
path is used as before. ``APIKEYS["M2M_TOKEN_CACHE_SECONDS"] = 0`` switches it off too.

**What is cached**, by the token's SHA-256 (django-oauth-toolkit's ``token_checksum``):
only tokens the database path just accepted, as it accepted them (scope already narrowed
to the application's grant, :class:`apikeys.oauth.ManagementOAuth2Validator`): their id,
expiry and scope, and the application's id, client id and name. Never a refusal, never a
token bound to a user or to resource indicators (RFC 8707): those always take the
database path. The plaintext token is never stored.

**The rules of a hit** (:meth:`TokenCache.lookup`), all of them or the database decides:

1. the entry is younger than ``M2M_TOKEN_CACHE_SECONDS`` (a bound for the one case Redis
   cannot cover: a change made while Redis was unreachable from its writer only);
2. one ``MGET`` of the Redis *epoch* and of the application's *version* returns exactly the
   values the entry was stored under; a key that is missing matches nothing;
3. the token has not expired (checked here, against the cached expiry).

**Invalidation** (:func:`invalidate_application`): every change that can end or narrow an
application's tokens (disable, enable, delete, new secret, new scopes or name, a token
deleted) sets the application's version to a new random value and, in the same Redis
transaction, the *generation* (one key for all applications). It does so at once and again
after the database transaction commits, so it is done before the service returns (at once
also covers a caller whose outer transaction is still open) and no worker can store the old
state under the new version. Random values, not counters: a key lost (eviction, a Redis
restart without its data, ``FLUSHDB``) is set to a new value that matches no entry.

**Filling** (:meth:`TokenCache.fill_snapshot` then :meth:`TokenCache.store`): the epoch and
the generation are read *before* the database query, and the entry is stored only if both
are still the same afterwards. A change that committed after that query bumped the version
after it (so the entry is already stale, and refused); one that bumped before our second
read changed the generation (so nothing is stored). Either way no stale entry survives.

**Epoch**: one random value for the whole cache, created when missing. A Redis that lost
its memory has no epoch, so a new one is made and every entry stored before is refused.
:func:`invalidate_all` replaces it (after restoring Redis from a backup, for instance).

**Redis failing**: the worker forgets every entry, answers from the database and leaves
Redis alone for :data:`RETRY_SECONDS`; then it tries again, so it returns to the fast path
by itself. A failed invalidation is logged as an error (it cannot be retried later: the
change is already committed); entries then live at most ``M2M_TOKEN_CACHE_SECONDS``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.base import ModelState
from oauth2_provider.models import get_access_token_model, get_application_model

from apikeys import conf, redisconn

logger = logging.getLogger("apikeys.tokencache")

#: Seconds a worker leaves Redis alone after a failure before trying it again.
RETRY_SECONDS = 1.0
#: Entries one worker keeps at most; past it the cache starts again from empty.
MAX_ENTRIES = 10_000


def _prefix() -> str:
    """This database's part of Redis, as :mod:`apikeys.keycache` names its own: one Redis
    may serve several installations (or test databases) whose application ids overlap,
    and an application's version must never be bumped by another's change."""
    name = connections[DEFAULT_DB_ALIAS].settings_dict.get("NAME") or ""
    return "{apikeys:" + str(name) + "}:m2m:"


def epoch_key() -> str:
    """The Redis key of the epoch (a new one refuses every cached token)."""
    return _prefix() + "epoch"


def generation_key() -> str:
    """The Redis key of the generation (bumped by every invalidation)."""
    return _prefix() + "generation"


def version_key(application_id: int) -> str:
    """The Redis key of an application's version."""
    return f"{_prefix()}app:{application_id}"


def _new_value() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Entry:
    """A token the database path accepted, and the Redis values it was stored under."""

    token_id: int
    scope: str
    expires: datetime
    expires_at: float
    application_id: int
    client_id: str
    application_name: str
    db: str
    epoch: bytes
    version: bytes
    stored_at: float
    # The MGET of rule 2, packed once when the entry is stored (RESP, as sent to Redis).
    check: bytes = b""

    def access_token(self) -> Any:
        """A fresh ``AccessToken`` with its ``application``, as the database path returns
        them: the fields above are loaded, every other one is deferred (read from the
        database only if someone asks for it), and ``user`` is ``None`` without a query.

        Built as Django's ``Model.from_db`` builds an instance with deferred fields (the
        loaded ones in ``__dict__``, the others absent), without running ``__init__`` for
        every field: a tenth of the CPU, on every request of the Management API."""
        application = _loaded(
            get_application_model(),
            self.db,
            {"id": self.application_id, "client_id": self.client_id, "name": self.application_name},
        )
        token_model = get_access_token_model()
        token = _loaded(
            token_model,
            self.db,
            {
                "id": self.token_id,
                "user_id": None,
                "application_id": self.application_id,
                "expires": self.expires,
                "scope": self.scope,
            },
        )
        token_model._meta.get_field("application").set_cached_value(token, application)
        return token


def _loaded(model: Any, db: str, values: dict[str, Any]) -> Any:
    """An instance of ``model`` as read from ``db`` with only ``values`` loaded."""
    instance = model.__new__(model)
    instance.__dict__.update(values)
    state = instance._state = ModelState()
    state.adding = False
    state.db = db
    return instance


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The epoch and generation read before a database lookup (:meth:`TokenCache.store`)."""

    epoch: bytes
    generation: bytes


class TokenCache:
    """One worker's entries and its view of Redis; :func:`get` returns the process's one."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._retry_at = 0.0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- reading

    def _client(self) -> redis.Redis | None:
        if time.monotonic() < self._retry_at:
            return None
        return redisconn.client()

    def _line(self) -> redisconn.Line | None:
        if time.monotonic() < self._retry_at:
            return None
        return redisconn.line()

    def _failed(self, exc: Exception) -> None:
        # Forget everything: bumps made while this worker could not see Redis are unknown.
        self._entries.clear()
        self._retry_at = time.monotonic() + RETRY_SECONDS
        logger.warning("M2M token cache: Redis unavailable (%s); using the database", exc)

    def lookup(self, checksum: str) -> Any:
        """The ``AccessToken`` for ``checksum`` if every rule of a hit holds, else ``None``."""
        entry = self._entries.get(checksum)
        if entry is None:
            return None
        if time.monotonic() - entry.stored_at >= conf.get("M2M_TOKEN_CACHE_SECONDS"):
            self._entries.pop(checksum, None)
            return None
        line = self._line()
        if line is None:
            return None
        try:
            epoch, version = line.send(entry.check)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if epoch != entry.epoch or version != entry.version or time.time() >= entry.expires_at:
            self._entries.pop(checksum, None)
            return None
        return entry.access_token()

    # ----------------------------------------------------------------- filling

    def fill_snapshot(self) -> Snapshot | None:
        """Read (creating them if missing) the epoch and the generation: call it *before*
        the database lookup whose result :meth:`store` may keep. ``None``: keep nothing."""
        client = self._client()
        if client is None:
            return None
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(epoch_key(), _new_value(), nx=True)
            pipe.set(generation_key(), _new_value(), nx=True)
            pipe.mget(epoch_key(), generation_key())
            epoch, generation = pipe.execute()[-1]
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if epoch is None or generation is None:
            return None
        return Snapshot(epoch=epoch, generation=generation)

    def store(self, checksum: str, access_token: Any, snapshot: Snapshot) -> None:
        """Keep ``access_token`` (as the database path just accepted it) if it may be cached
        and no invalidation happened since ``snapshot`` was read."""
        application = access_token.application
        if (
            application is None
            or access_token.user_id is not None
            or access_token.resource
            or access_token.expires is None
        ):
            return
        client = self._client()
        if client is None:
            return
        key = version_key(application.pk)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(key, _new_value(), nx=True)
            pipe.mget(epoch_key(), generation_key(), key)
            epoch, generation, version = pipe.execute()[-1]
        except redis.RedisError as exc:
            self._failed(exc)
            return
        if epoch != snapshot.epoch or generation != snapshot.generation or version is None:
            return
        entry = Entry(
            token_id=access_token.pk,
            scope=access_token.scope,
            expires=access_token.expires,
            expires_at=access_token.expires.timestamp(),
            application_id=application.pk,
            client_id=application.client_id,
            application_name=application.name,
            db=access_token._state.db or "default",
            epoch=epoch,
            version=version,
            stored_at=time.monotonic(),
            check=b"*3\r\n" + redisconn.pack_args(("MGET", epoch_key(), key)),
        )
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[checksum] = entry

    def clear(self) -> None:
        """Forget every entry of this worker (tests; other workers are told through Redis)."""
        self._entries.clear()
        self._retry_at = 0.0


_cache = TokenCache()


def enabled() -> bool:
    """Whether tokens are cached: Redis is the default cache and the cache is not off."""
    return redisconn.url() is not None and conf.get("M2M_TOKEN_CACHE_SECONDS") > 0


def get() -> TokenCache:
    """This process's cache."""
    return _cache


# --------------------------------------------------------------------------- invalidation


def _bump(application_id: int) -> None:
    client = redisconn.client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=True)
        pipe.set(version_key(application_id), _new_value())
        pipe.set(generation_key(), _new_value())
        pipe.execute()
    except redis.RedisError:
        logger.exception(
            "M2M token cache: could not invalidate application %s; workers that cached its "
            "tokens may accept them for up to APIKEYS['M2M_TOKEN_CACHE_SECONDS']",
            application_id,
        )


def invalidate_application(application_id: int | None) -> None:
    """Refuse every cached token of this application from the next request on.

    Call it in the transaction that makes the change (services do): it invalidates at once
    and again when that transaction commits, so the call that made the change returns only
    after both. Outside a transaction, once. Without Redis, nothing to do.
    """
    if application_id is None or redisconn.url() is None:
        return
    _bump(application_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _bump(application_id), robust=True)


def invalidate_all() -> None:
    """Refuse every cached token of every application (a new epoch)."""
    client = redisconn.client()
    if client is None:
        return
    try:
        client.set(epoch_key(), _new_value())
    except redis.RedisError:
        logger.exception("M2M token cache: could not replace the epoch")


def forget_deleted_token(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` receiver of the access token model: a deleted token (revoked, its
    application's secret regenerated, its application deleted) is refused at once. Expired
    tokens are skipped: the cache refuses them by their expiry already (``cleartokens``)."""
    expires = getattr(instance, "expires", None)
    if expires is not None and expires.timestamp() <= time.time():
        return
    invalidate_application(getattr(instance, "application_id", None))
