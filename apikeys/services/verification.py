"""Key verification: "is this key valid, for whom, with which scopes?", and its counting.

The Management API's verify endpoint, the in-process DRF authentication and the portal all
call :func:`api_key_verify`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from apikeys import crypto, keycache, limits
from apikeys.models import ApiKey, ApiKeyRateStamp, ApiKeyUsage
from apikeys.services._shared import clean_ip, hashing_secret

logger = logging.getLogger("apikeys.verification")


@dataclass(frozen=True)
class Verification:
    """The answer to "is this key valid, for whom, with which scopes?".

    ``code`` is the contract's: ``API_KEY_VERIFIED``, ``API_KEY_INVALID``,
    ``API_KEY_REVOKED``, ``API_KEY_EXPIRED``, ``API_KEY_WRONG_AUDIENCE``,
    ``API_KEY_RATE_LIMITED`` or ``API_KEY_USAGE_EXCEEDED``. ``key_id`` and ``status`` are
    set when the key was identified by a correct secret; the rest only when it is valid
    (``org_code`` and ``user_id`` also for a refusal by a limit). ``ratelimit``
    (``limit``, ``remaining``, ``reset``) and ``credits_remaining`` only for a limited key.
    """

    VERIFIED = "API_KEY_VERIFIED"
    INVALID = "API_KEY_INVALID"
    REVOKED = "API_KEY_REVOKED"
    EXPIRED = "API_KEY_EXPIRED"
    WRONG_AUDIENCE = "API_KEY_WRONG_AUDIENCE"
    RATE_LIMITED = "API_KEY_RATE_LIMITED"
    USAGE_EXCEEDED = "API_KEY_USAGE_EXCEEDED"

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
    ratelimit: dict[str, Any] | None = None
    credits_remaining: int | None = None
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

# Outcomes as ApiKeyUsage counts them, by Verification code.
USAGE_COLUMN = {
    "API_KEY_VERIFIED": "verified",
    "API_KEY_RATE_LIMITED": "rate_limited",
    "API_KEY_USAGE_EXCEEDED": "usage_exceeded",
    "API_KEY_REVOKED": "revoked",
    "API_KEY_EXPIRED": "expired",
    "API_KEY_WRONG_AUDIENCE": "wrong_audience",
}


def api_key_verify(
    *, key: Any, audience: str | None = None, ip: str | None = None, cost: int = 1
) -> Verification:
    """Verify ``key`` and, when valid, count the verification with its time and ``ip``.

    A key with usage limits is checked against them after its secret, status, expiry and
    audience (rate limit, then credits, using ``cost`` of them); every verification of an
    identified key is counted in its hour of usage history (``ApiKeyUsage``), by outcome.

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
    cached = keycache.verify_limited(key_digest, audience, ip, now, cost)
    if cached is not None:
        return _cached_verification(*cached, audience=audience, now=now)
    if key_digest in _LIMITED_DIGESTS:
        # Seen with limits by this process: straight to the locked path, which decides
        # everything again (and is right for a key whose limits were removed since).
        return _verify_limited(key_digest, audience, ip, cost)
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
    return _explain_failure(key_digest, audience, ip, now, cost)


def _cached_verification(
    entry: keycache.Entry,
    total: int | None,
    limited: keycache.Limited | None = None,
    *,
    audience: str | None,
    now: datetime,
) -> Verification:
    """The answer for a key known to this worker: ``total`` is its count after this
    verification when it verified; otherwise the entry says why not, as the database path
    would (``_explain_failure``). ``limited``: what the key's limits said, if it has any."""
    if limited is not None:
        if limited.first_exceeded:
            _usage_exceeded_hook(entry.key_id, limited.period)
        if limited.code is not None:
            return _refused_by_limit(
                limited.code,
                entry.key_id,
                entry.org_code,
                entry.user_id,
                entry.ratelimit,
                limited.reset,
            )
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
            last_verified_on=limited.at if limited is not None else now,
            verification_count=total,
            ratelimit=_ratelimit_answer(entry.ratelimit, limited.ratelimit_remaining, limited.reset)
            if limited is not None
            else None,
            credits_remaining=limited.credits_remaining if limited is not None else None,
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
    row: tuple[Any, ...] | None
    if postgresql:
        # One statement: the count and its hour of usage history (a data-modifying CTE).
        params["hour"] = hour_of(now)
        with _verify_cursor(db) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return row
    # SQLite: the count and its hour of usage history, two statements in one transaction.
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            record_usage(str(row[0]), "verified", now)
        return row


_USAGE_SQL: dict[str, str] = {}


def record_usage(key_id: str, outcome: str, when: datetime, n: int = 1) -> None:
    """Add ``n`` to the ``outcome`` count of the key's hour of ``when``: one upsert (inside
    the caller's transaction when there is one)."""
    record_usage_counts([(key_id, hour_of(when), {outcome: n})])


def hour_of(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record_usage_counts(items: list[tuple[str, datetime, dict[str, int]]]) -> None:
    """Add counts to hours of usage history: ``(key id, hour start, {outcome: n})`` each."""
    if not items:
        return
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor not in _USAGE_SQL:
        table = db.ops.quote_name(ApiKeyUsage._meta.db_table)
        columns = ApiKeyUsage.OUTCOMES
        # Constant fragments and a quoted table name: only parameters carry values.
        _USAGE_SQL[db.vendor] = (
            f"INSERT INTO {table} (api_key_id, start, {', '.join(columns)}) "  # nosec B608
            f"VALUES (%s, %s, {', '.join('%s' for _ in columns)}) "
            "ON CONFLICT (api_key_id, start) DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
        )
    params = [
        [key_id, db.ops.adapt_datetimefield_value(start)]
        + [counts.get(c, 0) for c in ApiKeyUsage.OUTCOMES]
        for key_id, start, counts in items
    ]
    with db.cursor() as cursor:
        cursor.executemany(_USAGE_SQL[db.vendor], params)


def _usage_exceeded_hook(key_id: str, period: int | None) -> None:
    """The first refusal for lack of credits in a refill period (``period``; 0 without a
    refill: the first refusal since credits were last set): records ``api_key.usage_exceeded``
    once per period. On the database path this runs inside the verification's transaction
    (the event commits with it); on the Redis path after the verify script, which decided
    "first" atomically (a worker killed between the two loses that event)."""
    from apikeys.services.audit import Actor
    from apikeys.services.webhooks import event_record

    key = ApiKey.objects.filter(pk=key_id).first()
    if key is not None:
        event_record(event_type="api_key.usage_exceeded", api_key=key, actor=Actor.system())
    logger.info("API key %s ran out of credits (period %s).", key_id, period)


def _ratelimit_answer(
    rate: tuple[int, int] | None, remaining: int | None, reset: datetime | None
) -> dict[str, Any] | None:
    if rate is None:
        return None
    answer: dict[str, Any] = {"limit": rate[0], "remaining": remaining}
    if reset is not None:
        answer["reset"] = reset
    return answer


def _refused_by_limit(
    code: str,
    key_id: str,
    org_code: str | None,
    user_id: str | None,
    rate: tuple[int, int] | None,
    reset: datetime | None,
) -> Verification:
    if code == Verification.RATE_LIMITED:
        return Verification(
            code=code,
            key_id=key_id,
            status="active",
            org_code=org_code,
            user_id=user_id,
            ratelimit={"limit": rate[0] if rate else 0, "remaining": 0, "reset": reset},
        )
    return Verification(
        code=code,
        key_id=key_id,
        status="active",
        org_code=org_code,
        user_id=user_id,
        credits_remaining=0,
    )


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
    statement = (
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
        # A key with limits takes the locked path (_verify_limited).
        " AND ratelimit_limit IS NULL AND credits_remaining IS NULL"
        + (" AND audience = %(audience)s" if with_audience else "")
        + f" RETURNING {', '.join(_VERIFY_COLUMNS)}"
    )
    if db.vendor != "postgresql":
        return statement
    usage = db.ops.quote_name(ApiKeyUsage._meta.db_table)
    others = [c for c in ApiKeyUsage.OUTCOMES if c != "verified"]
    return (
        f"WITH counted AS ({statement}), hour AS ("  # nosec B608
        f"INSERT INTO {usage} (api_key_id, start, verified, {', '.join(others)}) "
        f"SELECT id, %(hour)s, 1{', 0' * len(others)} FROM counted "
        f"ON CONFLICT (api_key_id, start) DO UPDATE SET verified = {usage}.verified + 1) "
        f"SELECT {', '.join(_VERIFY_COLUMNS)} FROM counted"
    )


def _explain_failure(
    key_digest: str,
    audience: str | None,
    ip: str | None,
    now: datetime,
    cost: int,
    *,
    limited_path: bool = True,
) -> Verification:
    """Why the verify statement found no valid key; a key with limits that is otherwise
    valid goes to :func:`_verify_limited`. A refusal of an identified key is counted in its
    usage history."""
    result = _explain(key_digest, audience, now)
    if result is None:
        if limited_path:
            return _verify_limited(key_digest, audience, ip, cost)
        return _INVALID
    if result.key_id is not None:
        record_usage(result.key_id, USAGE_COLUMN[result.code], now)
    return result


def _explain(key_digest: str, audience: str | None, now: datetime) -> Verification | None:
    """The refusal for this digest, or None if the key is valid (it has limits, or it
    changed since the verify statement)."""
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
            "ratelimit_limit",
            "credits_remaining",
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
    if candidate.is_limited:
        return None
    # The key changed between the two statements (rotated or revoked meanwhile): refuse.
    return _INVALID


_LIMITED_COLUMNS = (
    "id",
    "digest",
    "previous_digest",
    "previous_expires_at",
    "status",
    "expires_at",
    "audience",
    "scope_keys",
    "org_code",
    "user_public_id",
    "api_public_id",
    "verification_count",
    "counts_generation",
    "ratelimit_limit",
    "ratelimit_duration",
    "credits_remaining",
    "credits_refill_interval",
    "credits_refill_amount",
    "credits_period",
    "credits_exceeded_period",
    "limits_version",
)


# Digests this process has seen with usage limits (a routing hint only, bounded): their
# verifications skip the one-statement path, which never accepts them.
_LIMITED_DIGESTS: set[str] = set()
_LIMITED_DIGESTS_MAX = 10_000


def _verify_limited(
    key_digest: str, audience: str | None, ip: str | None, cost: int
) -> Verification:
    """Verify a key with usage limits on the database: in one transaction that holds the
    key's row (a no-op ``UPDATE`` first: the row lock on PostgreSQL, the write lock on
    SQLite), so that concurrent verifications of the key, in any process, take turns.

    - Rate limit: the times of the key's valid verifications of the last ``duration``
      seconds are rows (``ApiKeyRateStamp``), older ones deleted as it goes; with ``limit``
      of them already, the verification is refused until the oldest leaves the window.
    - Credits: a ``remaining`` of an earlier refill period is first set back to the refill
      amount (the lazy refill, exactly once: the row is held); fewer than ``cost`` left is a
      refusal that uses nothing, else ``cost`` is subtracted.
    The clock is read once the row is held, so the times of one key's verifications are in
    the order they were decided."""
    db = connections[DEFAULT_DB_ALIAS]
    table = db.ops.quote_name(ApiKey._meta.db_table)
    # Holds the row and reads it in one statement (a no-op UPDATE … RETURNING). Constant
    # fragments and a quoted table name: only parameters carry values.
    hold = (
        f"UPDATE {table} SET limits_version = limits_version "  # nosec B608
        f"WHERE digest = %s OR previous_digest = %s RETURNING {', '.join(_LIMITED_COLUMNS)}"
    )
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute(hold, [key_digest, key_digest])
            row = cursor.fetchone()
        now = timezone.now()
        if row is None:
            return _INVALID
        v = dict(zip(_LIMITED_COLUMNS, row, strict=True))
        for column in ("previous_expires_at", "expires_at"):
            v[column] = keycache.aware_datetime(v[column])
        valid = (
            crypto.constant_time_equals(v["digest"], key_digest)
            or (
                v["previous_digest"] is not None
                and crypto.constant_time_equals(v["previous_digest"], key_digest)
                and v["previous_expires_at"] is not None
                and v["previous_expires_at"] > now
            )
        ) and (
            v["status"] == ApiKey.Status.ACTIVE
            and (v["expires_at"] is None or v["expires_at"] > now)
            and (audience is None or v["audience"] == audience)
        )
        if valid:
            if v["ratelimit_limit"] is not None or v["credits_remaining"] is not None:
                if len(_LIMITED_DIGESTS) >= _LIMITED_DIGESTS_MAX:
                    _LIMITED_DIGESTS.clear()
                _LIMITED_DIGESTS.add(key_digest)
            else:
                _LIMITED_DIGESTS.discard(key_digest)
            return _apply_limits_locked(v, ip, cost, now)
    # Changed meanwhile: say why, without coming back here.
    return _explain_failure(key_digest, audience, ip, now, cost, limited_path=False)


def _count_limited(
    v: dict[str, Any],
    ip: str | None,
    now: datetime,
    limited: keycache.Limited,
    rate: tuple[int, int] | None,
) -> Verification:
    """The database path's answer when Redis applied the limits: count on the row (the
    credits stay in Redis, written back with the counts)."""
    key_id = v["id"]
    org_code, user_id = v["org_code"] or None, v["user_public_id"] or None
    if limited.first_exceeded:
        _usage_exceeded_hook(key_id, limited.period)
    if limited.code is not None:
        record_usage(key_id, USAGE_COLUMN[limited.code], now)
        return _refused_by_limit(limited.code, key_id, org_code, user_id, rate, limited.reset)
    ApiKey.objects.filter(pk=key_id).update(
        verification_count=F("verification_count") + 1,
        last_verified_on=limited.at,
        last_verified_ip=ip,
    )
    record_usage(key_id, "verified", now)
    return _limited_verified(
        v,
        when=limited.at,
        ratelimit=_ratelimit_answer(rate, limited.ratelimit_remaining, limited.reset),
        credits_remaining=limited.credits_remaining,
    )


def _limited_verified(
    v: dict[str, Any],
    *,
    when: datetime,
    ratelimit: dict[str, Any] | None,
    credits_remaining: int | None,
) -> Verification:
    """The valid answer for a limited key verified on the database path, from its row ``v``
    as read before this verification was counted (so its count is one more)."""
    return Verification(
        code=Verification.VERIFIED,
        key_id=v["id"],
        status=ApiKey.Status.ACTIVE,
        scopes=tuple(v["scope_keys"].split()),
        org_code=v["org_code"] or None,
        user_id=v["user_public_id"] or None,
        api_id=v["api_public_id"],
        audience=v["audience"],
        expires_at=keycache.aware_datetime(v["expires_at"]),
        last_verified_on=when,
        verification_count=keycache.live_count(
            v["id"], int(v["verification_count"]) + 1, int(v["counts_generation"])
        ),
        ratelimit=ratelimit,
        credits_remaining=credits_remaining,
    )


def _apply_limits_locked(
    v: dict[str, Any], ip: str | None, cost: int, now: datetime
) -> Verification:
    key_id = v["id"]
    org_code, user_id = v["org_code"] or None, v["user_public_id"] or None
    rate = (
        (int(v["ratelimit_limit"]), int(v["ratelimit_duration"]))
        if v["ratelimit_limit"] is not None
        else None
    )
    # With Redis, the limits live there (the key's window and credits, shared with the
    # Redis path); the database keeps them only when Redis cannot answer.
    in_redis = keycache.apply_limits(key_id, v, cost)
    if in_redis is not None:
        return _count_limited(v, ip, now, in_redis, rate)
    now_us = int(now.timestamp() * 1_000_000)
    db = connections[DEFAULT_DB_ALIAS]
    stamps = db.ops.quote_name(ApiKeyRateStamp._meta.db_table)
    in_window = 0
    oldest: int | None = None
    if rate is not None:
        window_us = rate[1] * 1_000_000
        with db.cursor() as cursor:
            # Constant fragments and a quoted table name: only parameters carry values.
            cursor.execute(
                f"DELETE FROM {stamps} WHERE api_key_id = %s AND at <= %s",  # nosec B608
                [key_id, now_us - window_us],
            )
            # One aggregate over the key's index range: what is left is the window.
            cursor.execute(
                f"SELECT COUNT(*), MIN(at) FROM {stamps} WHERE api_key_id = %s",  # nosec B608
                [key_id],
            )
            count, oldest = cursor.fetchone()
            in_window = int(count)
        if in_window >= rate[0] and oldest is not None:
            reset = datetime.fromtimestamp((oldest + window_us) / 1_000_000, tz=UTC)
            record_usage(key_id, "rate_limited", now)
            return _refused_by_limit(
                Verification.RATE_LIMITED, key_id, org_code, user_id, rate, reset
            )
    updates: dict[str, Any] = {}
    remaining: int | None = None
    if v["credits_remaining"] is not None:
        remaining = int(v["credits_remaining"])
        interval = v["credits_refill_interval"]
        period = v["credits_period"]
        if interval and v["credits_refill_amount"] is not None:
            current = limits.period_of(interval, now)
            if (period or 0) < current:
                remaining, period = int(v["credits_refill_amount"]), current
                updates["credits_remaining"], updates["credits_period"] = remaining, period
        if remaining < cost:
            if v["credits_exceeded_period"] != (period or 0):
                updates["credits_exceeded_period"] = period or 0
                _usage_exceeded_hook(key_id, period)
            if updates:
                ApiKey.objects.filter(pk=key_id).update(**updates)
            record_usage(key_id, "usage_exceeded", now)
            return _refused_by_limit(
                Verification.USAGE_EXCEEDED, key_id, org_code, user_id, rate, None
            )
        remaining -= cost
        updates["credits_remaining"] = remaining
    table = db.ops.quote_name(ApiKey._meta.db_table)
    if rate is not None:
        with db.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {stamps} (api_key_id, at) VALUES (%s, %s)",  # nosec B608
                [key_id, now_us],
            )
    sets = ", ".join(f"{column} = %s" for column in updates)
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET verification_count = verification_count + 1, "  # nosec B608
            "last_verified_on = %s, last_verified_ip = %s"
            + (", " + sets if sets else "")
            + " WHERE id = %s",
            [db.ops.adapt_datetimefield_value(now), ip, *updates.values(), key_id],
        )
    record_usage(key_id, "verified", now)
    next_reset: datetime | None = None
    if rate is not None:
        first = now_us if oldest is None else oldest
        next_reset = datetime.fromtimestamp((first + rate[1] * 1_000_000) / 1_000_000, tz=UTC)
    return _limited_verified(
        v,
        when=now,
        ratelimit=_ratelimit_answer(rate, rate[0] - in_window - 1, next_reset) if rate else None,
        credits_remaining=remaining,
    )
