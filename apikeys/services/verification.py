"""Key verification: "is this key valid, for whom, with which scopes?", and its counting.

The Management API's verify endpoint, the in-process DRF authentication and the portal all
call :func:`api_key_verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q
from django.utils import timezone

from apikeys import crypto, keycache
from apikeys.models import ApiKey
from apikeys.services._shared import clean_ip, hashing_secret


@dataclass(frozen=True)
class Verification:
    """The answer to "is this key valid, for whom, with which scopes?".

    ``code`` is the contract's: ``API_KEY_VERIFIED``, ``API_KEY_INVALID``,
    ``API_KEY_REVOKED``, ``API_KEY_EXPIRED`` or ``API_KEY_WRONG_AUDIENCE``. ``key_id`` and
    ``status`` are set when the key was identified by a correct secret; the rest only when
    it is valid.
    """

    VERIFIED = "API_KEY_VERIFIED"
    INVALID = "API_KEY_INVALID"
    REVOKED = "API_KEY_REVOKED"
    EXPIRED = "API_KEY_EXPIRED"
    WRONG_AUDIENCE = "API_KEY_WRONG_AUDIENCE"

    code: str
    key_id: str | None = None
    status: str | None = None
    scopes: tuple[str, ...] = ()
    org_code: str | None = None
    user_id: str | None = None
    api_id: str | None = None
    audience: str | None = None
    expires_at: datetime | None = None
    last_verified_on: datetime | None = None
    verification_count: int | None = None
    # Whether the owning user is active (True for an organization's key), when the answer
    # came from the key cache, which knows it; None when it was not read (the database
    # path). Not part of the API's answer: the in-process authentication uses it to accept
    # a user's key without reading the user.
    owner_active: bool | None = None

    @property
    def is_valid(self) -> bool:
        return self.code == self.VERIFIED


_INVALID = Verification(code=Verification.INVALID)


_VERIFY_COLUMNS = (
    "id",
    "digest",
    "previous_digest",
    "scope_keys",
    "org_code",
    "user_public_id",
    "api_public_id",
    "audience",
    "expires_at",
    "verification_count",
    "counts_generation",
)


def api_key_verify(*, key: Any, audience: str | None = None, ip: str | None = None) -> Verification:
    """Verify ``key`` and, when valid, count the verification with its time and ``ip``.

    With Redis as the default cache, a key this worker knows costs one Redis round trip and
    no database one (:mod:`apikeys.keycache`: its state cached here, revocation honoured at
    once, counts kept in Redis and written back in batches). Otherwise, or when Redis fails:
    one database round trip when the key is valid: a single ``UPDATE … RETURNING`` both
    checks every condition (secret, status, expiry, grace period, audience) and counts. Only
    a key that fails it costs one more read, to say why. A malformed key or a bad checksum
    costs none. The cost does not grow with the number of keys (unique index on the digest).
    """
    if not crypto.is_well_formed(key):
        return _INVALID
    key_digest = crypto.digest(key, hashing_secret())
    now = timezone.now()
    ip = clean_ip(ip)
    # With Redis: the key's state cached in this worker, checked and counted in one Redis
    # round trip (apikeys.keycache); None when it cannot answer, and the database does.
    cached = keycache.verify(key_digest, audience, ip, now)
    if cached is not None:
        return _cached_verification(*cached, audience=audience, now=now)
    row = _count_valid_verification(key_digest, audience, ip, now)
    if row is not None:
        values = dict(zip(_VERIFY_COLUMNS, row, strict=True))
        # The index lookup matched on equality; compare again in constant time so that
        # the acceptance decision itself never depends on a short-circuiting comparison.
        if not (
            crypto.constant_time_equals(values["digest"], key_digest)
            or crypto.constant_time_equals(values["previous_digest"] or "", key_digest)
        ):
            return _INVALID
        return Verification(
            code=Verification.VERIFIED,
            key_id=values["id"],
            status=ApiKey.Status.ACTIVE,
            scopes=tuple(values["scope_keys"].split()),
            org_code=values["org_code"] or None,
            user_id=values["user_public_id"] or None,
            api_id=values["api_public_id"],
            audience=values["audience"],
            expires_at=keycache.aware_datetime(values["expires_at"]),
            last_verified_on=now,
            # With Redis, counts not yet written back are added (one more Redis round trip,
            # on this slower path only); without it, the row's count as it is.
            verification_count=keycache.live_count(
                values["id"], int(values["verification_count"]), int(values["counts_generation"])
            ),
        )
    return _explain_failure(key_digest, audience, now)


def _cached_verification(
    entry: keycache.Entry, total: int | None, *, audience: str | None, now: datetime
) -> Verification:
    """The answer for a key known to this worker: ``total`` is its count after this
    verification when it verified; otherwise the entry says why not, as the database path
    would (``_explain_failure``)."""
    if total is not None:
        return Verification(
            code=Verification.VERIFIED,
            key_id=entry.key_id,
            status=ApiKey.Status.ACTIVE,
            scopes=entry.scopes,
            org_code=entry.org_code,
            user_id=entry.user_id,
            api_id=entry.api_id,
            audience=entry.audience,
            expires_at=entry.expires_at,
            last_verified_on=now,
            verification_count=total,
            owner_active=entry.owner_active,
        )
    code = keycache.outcome(entry, audience, now)
    if code == Verification.REVOKED:
        return Verification(code=code, key_id=entry.key_id, status="revoked")
    if code == Verification.EXPIRED:
        return Verification(code=code, key_id=entry.key_id, status="expired")
    if code == Verification.WRONG_AUDIENCE:
        return Verification(code=code, key_id=entry.key_id, status="active")
    return _INVALID


def _count_valid_verification(
    key_digest: str, audience: str | None, ip: str | None, now: datetime
) -> tuple[Any, ...] | None:
    """Count one verification if ``key_digest`` is a valid key; its columns, else None.

    One statement, one round trip: the ``WHERE`` checks every condition, the ``SET`` counts,
    ``RETURNING`` answers. The row lock the ``UPDATE`` takes makes concurrent verifications
    of one key queue for a few microseconds each, and every one of them is counted: no
    read-modify-write in Python, no lost update.
    """
    # The connection itself, not the ``connection`` proxy: a dozen attribute lookups below,
    # each of which would go through the proxy's thread-local lookup on every request.
    db = connections[DEFAULT_DB_ALIAS]
    postgresql = db.vendor == "postgresql"
    # On PostgreSQL, this statement's own transaction commits without waiting for the WAL
    # flush (synchronous_commit off, for this transaction only): the count is visible to
    # every reader at once, and only a database crash (not a restart) could lose the last
    # fraction of a second of counts. Key state (issue, rotate, revoke) always commits
    # synchronously. Inside a caller's transaction the setting would spread to the
    # caller's writes, so it is used only in autocommit.
    async_commit = postgresql and not db.in_atomic_block
    sql = _verify_sql(db, audience is not None, async_commit)
    params: dict[str, Any] = {
        "now": db.ops.adapt_datetimefield_value(now),
        "ip": ip,
        "digest": key_digest,
    }
    if audience is not None:
        params["audience"] = audience
    with _verify_cursor(db) if postgresql else db.cursor() as cursor:
        cursor.execute(sql, params)
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def _verify_cursor(db: Any) -> Any:
    """A cursor for the verify statement on PostgreSQL: server-side parameter binding.

    Django's default psycopg cursor binds parameters into the SQL text, so PostgreSQL parses
    and plans the statement on every call: measured, that is three quarters of the
    database's CPU for a verification. Sent with its parameters apart, the statement can be
    prepared once per connection and then only executed. psycopg does that when the
    connection allows prepared statements (``DATABASES[...]["OPTIONS"]["prepare_threshold"]``;
    Django's default, None, turns them off for connection poolers that cannot follow them).
    The cursor is wrapped like any Django cursor: logged, counted and error-mapped.
    """
    try:
        from django.db.backends.postgresql.base import ServerBindingCursor
    except ImportError:  # psycopg2: no server-side binding, the usual cursor
        return db.cursor()
    # What db.cursor() does, with another cursor class.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        # (django-stubs declare it without the connection argument it takes.)
        cursor_class: Any = ServerBindingCursor
        raw = cursor_class(db.connection)
    return db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)


_VERIFY_SQL: dict[tuple[str, bool, bool], str] = {}


def _verify_sql(db: Any, with_audience: bool, async_commit: bool) -> str:
    """The verify statement, built once per shape (it is on every request's path)."""
    shape = (db.vendor, with_audience, async_commit)
    if shape not in _VERIFY_SQL:
        _VERIFY_SQL[shape] = _build_verify_sql(db, with_audience, async_commit)
    return _VERIFY_SQL[shape]


def _build_verify_sql(db: Any, with_audience: bool, async_commit: bool) -> str:
    table = db.ops.quote_name(ApiKey._meta.db_table)
    # Concurrent verifications commit in any order, so "the last one to commit" is not "the
    # latest": keep the later of the stored time and this one, and the IP that goes with
    # it. (SQLite stores the times as fixed-format text, which compares in time order.)
    later = "(last_verified_on IS NULL OR last_verified_on <= %(now)s)"
    return (
        f"UPDATE {table} SET verification_count = verification_count + 1, "
        f"last_verified_ip = CASE WHEN {later} THEN %(ip)s ELSE last_verified_ip END, "
        f"last_verified_on = CASE WHEN {later} THEN %(now)s ELSE last_verified_on END"
        + (
            " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
            if async_commit
            else ""
        )
        + " WHERE (digest = %(digest)s"
        " OR (previous_digest = %(digest)s AND previous_expires_at > %(now)s))"
        # The row is found by its digest, and only by it: the status test is written so that
        # no index can serve it (``IS TRUE``). Otherwise, on a table without statistics yet
        # (young, or just bulk-loaded), PostgreSQL may prefer the (status, id) index and walk
        # every active key; a prepared statement would keep that plan for the connection.
        f" AND (status = '{ApiKey.Status.ACTIVE.value}') IS TRUE"
        " AND (expires_at IS NULL OR expires_at > %(now)s)"
        + (" AND audience = %(audience)s" if with_audience else "")
        + f" RETURNING {', '.join(_VERIFY_COLUMNS)}"
    )


def _explain_failure(key_digest: str, audience: str | None, now: datetime) -> Verification:
    candidate = (
        ApiKey.objects.filter(Q(digest=key_digest) | Q(previous_digest=key_digest))
        .only(
            "id",
            "digest",
            "previous_digest",
            "previous_expires_at",
            "status",
            "expires_at",
            "audience",
        )
        .first()
    )
    if candidate is None:
        return _INVALID
    current = crypto.constant_time_equals(candidate.digest, key_digest)
    in_grace = (
        candidate.previous_digest is not None
        and crypto.constant_time_equals(candidate.previous_digest, key_digest)
        and candidate.previous_expires_at is not None
        and candidate.previous_expires_at > now
    )
    if not (current or in_grace):
        # A replaced secret after its grace period is simply no longer a key.
        return _INVALID
    if candidate.status == ApiKey.Status.REVOKED:
        return Verification(code=Verification.REVOKED, key_id=candidate.id, status="revoked")
    if candidate.expires_at is not None and candidate.expires_at <= now:
        return Verification(code=Verification.EXPIRED, key_id=candidate.id, status="expired")
    if audience is not None and candidate.audience != audience:
        return Verification(code=Verification.WRONG_AUDIENCE, key_id=candidate.id, status="active")
    # The key changed between the two statements (rotated or revoked meanwhile): refuse.
    return _INVALID
