"""Every write of the domain, and key verification: the one path that the admin, the portal
and the Management API all call.

Services take keyword-only arguments, write inside ``transaction.atomic`` together with their
``AuditEvent``, and return small frozen dataclasses. A key's plaintext exists only in the
``IssuedKey`` returned by :func:`api_key_issue` and :func:`api_key_rotate`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apikeys import conf, crypto
from apikeys import exceptions as errors
from apikeys.models import (
    MANAGEMENT_SCOPES,
    ORG_CODE_PATTERN,
    ROLE_KEY_PATTERN,
    SCOPE_KEY_PATTERN,
    Api,
    ApiKey,
    AuditEvent,
    M2MGrant,
    Membership,
    Organization,
    Role,
    Scope,
    SystemPermission,
    new_org_code,
)

User = get_user_model()

Action = AuditEvent.Action


# --------------------------------------------------------------------------- actors


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a person, an M2M application, or the system itself."""

    user: Any = None
    application: Any = None
    ip: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls()

    @property
    def type(self) -> str:
        if self.application is not None:
            return AuditEvent.ActorType.APPLICATION
        if self.user is not None:
            return AuditEvent.ActorType.USER
        return AuditEvent.ActorType.SYSTEM

    @property
    def label(self) -> str:
        if self.application is not None:
            return self.application.name or str(self.application.client_id)
        if self.user is not None:
            return self.user.display_name
        return "system"


def _audit(**fields: Any) -> AuditEvent:
    """Record one event: :func:`_audit_event` with these keyword arguments, saved."""
    event = _audit_event(**fields)
    event.save()
    return event


def _audit_event(
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    organization: Organization | None = None,
    user_public_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An unsaved event (:func:`_audit` saves one; bulk writers save many at once). Every
    ``AuditEvent`` the services write is made here."""
    return AuditEvent(
        action=action,
        actor_type=actor.type,
        actor_user=actor.user,
        actor_application=actor.application,
        actor_label=actor.label[:200],
        target_type=target_type,
        target_id=target_id,
        organization=organization,
        org_code=organization.code if organization else "",
        user_public_id=user_public_id,
        ip=_clean_ip(actor.ip),
        details=details or {},
    )


def _clean_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        return None


def _check_text(value: Any, *, field: str, max_length: int, min_length: int = 1) -> str:
    if not isinstance(value, str):
        raise errors.ValidationFailed(
            f"{field} must be a string.", code="INVALID_FIELD", field=field
        )
    value = value.strip()
    if not min_length <= len(value) <= max_length:
        raise errors.ValidationFailed(
            f"{field} must be {min_length} to {max_length} characters.",
            code="INVALID_FIELD",
            field=field,
        )
    return value


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued or rotated, with its plaintext: show it once, then drop it."""

    api_key: ApiKey
    plaintext: str = field(repr=False)

    def __repr__(self) -> str:
        return f"IssuedKey(api_key={self.api_key!r}, plaintext=<hidden>)"


def resolve_scopes(*, api: Api, scopes: Iterable[Scope | str]) -> list[Scope]:
    """The scopes of ``api`` named by instances, scope ids (``api_scope_…``) or scope keys.

    Anything that is not a scope of this very API raises ``ScopeNotFound`` naming it.
    """
    wanted: list[Scope | str] = list(scopes)
    names = [s for s in wanted if not isinstance(s, Scope)]
    for name in names:
        if not isinstance(name, str):
            raise errors.ValidationFailed(
                "scope_ids must be a list of strings.", code="INVALID_FIELD", field="scope_ids"
            )
    found = {}
    if names:
        for scope in Scope.objects.filter(api=api).filter(Q(id__in=names) | Q(key__in=names)):
            found[scope.id] = scope
            found[scope.key] = scope
    result: dict[str, Scope] = {}
    for item in wanted:
        if isinstance(item, Scope):
            if item.api_id != api.id:
                raise errors.ScopeNotFound(
                    f"Scope {item.key!r} does not belong to API {api.id}.", field="scope_ids"
                )
            result[item.id] = item
        elif item in found:
            result[found[item].id] = found[item]
        else:
            raise errors.ScopeNotFound(
                f"Scope {item[:80]!r} is not a scope of API {api.id}.", field="scope_ids"
            )
    return sorted(result.values(), key=lambda s: s.key)


def api_key_issue(
    *,
    name: str,
    api: Api,
    scopes: Iterable[Scope | str] = (),
    organization: Organization | None = None,
    user: Any = None,
    expires_at: datetime | None = None,
    actor: Actor,
) -> IssuedKey:
    """Issue a key for ``api`` owned by exactly one of ``organization`` or ``user``."""
    name = _check_text(name, field="name", max_length=128)
    if organization is None and user is None:
        raise errors.OwnerRequired()
    if organization is not None and user is not None:
        raise errors.OwnerAmbiguous()
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed(
            "expires_at must be in the future.", code="EXPIRES_AT_IN_PAST", field="expires_at"
        )
    chosen = resolve_scopes(api=api, scopes=scopes)
    plaintext = crypto.generate_key()
    with transaction.atomic():
        _hold_owner(organization or user)
        api_key = ApiKey.objects.create(
            name=name,
            api=api,
            api_public_id=api.id,
            audience=api.audience,
            scope_keys=" ".join(s.key for s in chosen),
            organization=organization,
            user=user,
            org_code=organization.code if organization else "",
            user_public_id=user.public_id if user else "",
            digest=crypto.digest(plaintext, _hashing_secret()),
            key_prefix=crypto.display_prefix(plaintext),
            key_suffix=crypto.display_suffix(plaintext),
            created_by=actor.label[:200],
            created_by_user=actor.user if actor.application is None else None,
            created_by_application=actor.application,
            expires_at=expires_at,
        )
        api_key.scopes.set(chosen)
        _audit(
            actor=actor,
            action=Action.API_KEY_ISSUED,
            target_type="api_key",
            target_id=api_key.id,
            organization=organization,
            user_public_id=api_key.user_public_id,
            details={"name": name, "api_id": api.id, "scopes": [s.key for s in chosen]},
        )
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def _hold_owner(owner: Any) -> None:
    """Inside a transaction that writes a row pointing at ``owner`` (a key, a membership):
    make sure the owner still exists, and keep it from being deleted until that commits.

    On PostgreSQL a ``FOR KEY SHARE`` lock: it waits for a delete in progress (which holds
    the row ``FOR UPDATE`` while it revokes the owner's keys) and then finds the row gone, so
    no key can slip in between that revocation and the delete; concurrent issuers for one
    owner do not wait for each other. Elsewhere (SQLite) writers are serialized anyway.
    """
    # (Not type(owner): the portal passes request.user, a lazy object.)
    model = Organization if isinstance(owner, Organization) else User
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_key_share_sql(connection, model), [owner.pk])
            exists = cursor.fetchone() is not None
    else:
        exists = model.objects.filter(pk=owner.pk).exists()
    if not exists:
        if model is Organization:
            raise errors.OrganizationNotFound(field="org_code")
        raise errors.UserNotFound(field="user_id")


def _key_share_sql(connection: Any, model: Any) -> str:
    # Django's select_for_update() offers FOR UPDATE and FOR NO KEY UPDATE, both of which
    # would make concurrent issuers for one owner wait for each other.
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    return f"SELECT 1 FROM {table} WHERE {pk} = %s FOR KEY SHARE"


def api_key_rotate(*, api_key: ApiKey, grace_seconds: int = 0, actor: Actor) -> IssuedKey:
    """Give ``api_key`` a new secret (same id, scopes, owner and counters).

    The previous secret fails at once, or keeps verifying for ``grace_seconds`` (for
    zero-downtime roll-outs). A revoked key cannot be rotated.
    """
    limit = conf.get("MAX_ROTATION_GRACE_SECONDS")
    if (
        isinstance(grace_seconds, bool)
        or not isinstance(grace_seconds, int)
        or not (0 <= grace_seconds <= limit)
    ):
        raise errors.ValidationFailed(
            f"The grace period must be a whole number of seconds from 0 to {limit}.",
            code="INVALID_GRACE_PERIOD",
            field="expire_previous_in",
        )
    plaintext = crypto.generate_key()
    now = timezone.now()
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.status == ApiKey.Status.REVOKED:
            raise errors.ApiKeyRevoked("A revoked API key cannot be rotated.")
        if grace_seconds:
            locked.previous_digest = locked.digest
            locked.previous_expires_at = now + timedelta(seconds=grace_seconds)
        else:
            locked.previous_digest = None
            locked.previous_expires_at = None
        locked.digest = crypto.digest(plaintext, _hashing_secret())
        locked.key_prefix = crypto.display_prefix(plaintext)
        locked.key_suffix = crypto.display_suffix(plaintext)
        locked.rotated_on = now
        locked.save(
            update_fields=[
                "digest",
                "previous_digest",
                "previous_expires_at",
                "key_prefix",
                "key_suffix",
                "rotated_on",
            ]
        )
        _audit(
            actor=actor,
            action=Action.API_KEY_ROTATED,
            target_type="api_key",
            target_id=locked.id,
            organization=locked.organization,
            user_public_id=locked.user_public_id,
            details={"grace_seconds": grace_seconds},
        )
    return IssuedKey(api_key=locked, plaintext=plaintext)


def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke ``api_key`` at once, both secrets if it is in a rotation grace period.

    Idempotent: revoking a revoked key changes nothing and records nothing.
    """
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.status == ApiKey.Status.REVOKED:
            return locked
        locked.status = ApiKey.Status.REVOKED
        locked.revoked_on = timezone.now()
        locked.previous_digest = None
        locked.previous_expires_at = None
        locked.save(
            update_fields=["status", "revoked_on", "previous_digest", "previous_expires_at"]
        )
        _audit(
            actor=actor,
            action=Action.API_KEY_REVOKED,
            target_type="api_key",
            target_id=locked.id,
            organization=locked.organization,
            user_public_id=locked.user_public_id,
        )
    return locked


# --------------------------------------------------------------------------- verification


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
)


def api_key_verify(*, key: Any, audience: str | None = None, ip: str | None = None) -> Verification:
    """Verify ``key`` and, when valid, count the verification with its time and ``ip``.

    One database round trip when the key is valid: a single ``UPDATE … RETURNING`` both
    checks every condition (secret, status, expiry, grace period, audience) and counts. Only
    a key that fails it costs one more read, to say why. A malformed key or a bad checksum
    costs none. The cost does not grow with the number of keys (unique index on the digest).
    """
    if not crypto.is_well_formed(key):
        return _INVALID
    key_digest = crypto.digest(key, _hashing_secret())
    now = timezone.now()
    row = _count_valid_verification(key_digest, audience, _clean_ip(ip), now)
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
            expires_at=_as_datetime(values["expires_at"]),
            last_verified_on=now,
            verification_count=int(values["verification_count"]),
        )
    return _explain_failure(key_digest, audience, now)


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
        return cursor.fetchone()


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
        raw = ServerBindingCursor(db.connection)
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


def _as_datetime(value: Any) -> datetime | None:
    """A datetime read by raw SQL: SQLite hands back naive UTC text, PostgreSQL a datetime."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = parse_datetime(str(value))
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _hashing_secret() -> str:
    return conf.get("HASHING_SECRET")


# --------------------------------------------------------------------------- APIs and scopes


def api_create(*, name: str, audience: str, actor: Actor) -> Api:
    name = _check_text(name, field="name", max_length=64)
    audience = _check_text(audience, field="audience", max_length=64)
    try:
        with transaction.atomic():
            api = Api.objects.create(name=name, audience=audience)
            _audit(
                actor=actor,
                action=Action.API_CREATED,
                target_type="api",
                target_id=api.id,
                details={"name": name, "audience": audience},
            )
    except IntegrityError as exc:
        raise errors.AudienceTaken(field="audience") from exc
    return api


def _has_active_keys(keys: Any) -> bool:
    now = timezone.now()
    return (
        keys.filter(status=ApiKey.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .exists()
    )


def api_delete(*, api: Api, actor: Actor) -> None:
    """Delete ``api`` and its scopes; refused while active keys use it."""
    with transaction.atomic():
        locked = Api.objects.select_for_update().get(pk=api.pk)
        if _has_active_keys(ApiKey.objects.filter(api=locked)):
            raise errors.ApiInUse()
        _audit(
            actor=actor,
            action=Action.API_DELETED,
            target_type="api",
            target_id=locked.id,
            details={"name": locked.name, "audience": locked.audience},
        )
        locked.delete()


def scope_create(*, api: Api, key: str, description: str = "", actor: Actor) -> Scope:
    key = _check_pattern(
        key,
        field="key",
        pattern=SCOPE_KEY_PATTERN,
        what="a scope key of 1 to 64 characters without spaces",
    )
    description = _check_text(description, field="description", max_length=255, min_length=0)
    try:
        with transaction.atomic():
            scope = Scope.objects.create(api=api, key=key, description=description)
            _audit(
                actor=actor,
                action=Action.SCOPE_CREATED,
                target_type="scope",
                target_id=scope.id,
                details={"api_id": api.id, "key": key},
            )
    except IntegrityError as exc:
        raise errors.ScopeKeyTaken(field="key") from exc
    return scope


def scope_update(*, scope: Scope, description: str, actor: Actor) -> Scope:
    """Change a scope's description; its key never changes (keys refer to it by key)."""
    scope.description = _check_text(description, field="description", max_length=255, min_length=0)
    with transaction.atomic():
        scope.save(update_fields=["description"])
        _audit(
            actor=actor,
            action=Action.SCOPE_UPDATED,
            target_type="scope",
            target_id=scope.id,
            details={"api_id": scope.api_id, "description": scope.description},
        )
    return scope


def scope_delete(*, scope: Scope, actor: Actor) -> None:
    """Delete ``scope``; refused while active keys carry it."""
    with transaction.atomic():
        locked = Scope.objects.select_for_update().get(pk=scope.pk)
        if _has_active_keys(locked.api_keys.all()):
            raise errors.ScopeInUse()
        _audit(
            actor=actor,
            action=Action.SCOPE_DELETED,
            target_type="scope",
            target_id=locked.id,
            details={"api_id": locked.api_id, "key": locked.key},
        )
        locked.delete()


def _check_pattern(value: Any, *, field: str, pattern: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise errors.ValidationFailed(f"{field} must be {what}.", code="INVALID_FIELD", field=field)
    return value


# --------------------------------------------------------------------------- organizations, users, roles


def organization_create(*, name: str, code: str | None = None, actor: Actor) -> Organization:
    """Create an organization with ``code``, or with a new random ``org_…`` code.

    A code given is refused when an organization has it, or had it (a deleted one's keys and
    audit events keep its code). A random code is drawn again in either case, so a caller
    that gave none never hears of a clash.
    """
    name = _check_text(name, field="name", max_length=128)
    if code is not None:
        code = _check_pattern(
            code,
            field="code",
            pattern=ORG_CODE_PATTERN,
            what="org_ followed by lowercase letters and digits",
        )
        if _org_code_was_used(code):
            raise errors.OrganizationCodeTaken(
                "This code belonged to a deleted organization: its keys and audit history keep "
                "it, so it cannot name another one.",
                field="code",
            )
        try:
            return _organization_insert(name=name, code=code, actor=actor)
        except IntegrityError as exc:
            raise errors.OrganizationCodeTaken(field="code") from exc
    for _ in range(ORG_CODE_DRAWS):
        drawn = new_org_code()
        if Organization.objects.filter(code=drawn).exists() or _org_code_was_used(drawn):
            continue
        try:
            return _organization_insert(name=name, code=drawn, actor=actor)
        except IntegrityError:
            continue  # taken between the check and the insert: draw again
    raise RuntimeError(f"No unused organization code in {ORG_CODE_DRAWS} random draws.")


# 48 random bits a code: a second draw is already rare; several in a row mean a broken RNG.
ORG_CODE_DRAWS = 5


def _organization_insert(*, name: str, code: str, actor: Actor) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.create(name=name, code=code)
        _audit(
            actor=actor,
            action=Action.ORGANIZATION_CREATED,
            target_type="organization",
            target_id=organization.code,
            organization=organization,
            details={"name": name},
        )
    return organization


def _org_code_was_used(code: str) -> bool:
    """Whether keys or audit events name ``code``: an organization had it, even if deleted."""
    return (
        ApiKey.objects.filter(org_code=code).exists()
        or AuditEvent.objects.filter(org_code=code).exists()
    )


def organization_update(*, organization: Organization, name: str, actor: Actor) -> Organization:
    organization.name = _check_text(name, field="name", max_length=128)
    with transaction.atomic():
        organization.save(update_fields=["name"])
        _audit(
            actor=actor,
            action=Action.ORGANIZATION_UPDATED,
            target_type="organization",
            target_id=organization.code,
            organization=organization,
            details={"name": organization.name},
        )
    return organization


def _check_email(email: Any) -> str:
    email = _check_text(email, field="email", max_length=254)
    try:
        validate_email(email)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed(
            "email is not a valid address.", code="INVALID_EMAIL", field="email"
        ) from exc
    return email


def user_create(
    *,
    email: str,
    given_name: str = "",
    family_name: str = "",
    password: str | None = None,
    actor: Actor,
) -> Any:
    """Create a user; the email is also their sign-in name. No password: portal links only."""
    email = _check_email(email)
    given_name = _check_text(given_name, field="given_name", max_length=150, min_length=0)
    family_name = _check_text(family_name, field="family_name", max_length=150, min_length=0)
    if User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email)).exists():
        raise errors.EmailTaken(field="email")
    try:
        with transaction.atomic():
            user = User(username=email, email=email, first_name=given_name, last_name=family_name)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
            _audit(
                actor=actor,
                action=Action.USER_CREATED,
                target_type="user",
                target_id=user.public_id,
                user_public_id=user.public_id,
                details={"email": email},
            )
    except IntegrityError as exc:
        raise errors.EmailTaken(field="email") from exc
    return user


def role_create(*, key: str, name: str, description: str = "", actor: Actor) -> Role:
    key = _check_pattern(
        key,
        field="key",
        pattern=ROLE_KEY_PATTERN,
        what="lowercase letters, digits and _:.- (1 to 64)",
    )
    name = _check_text(name, field="name", max_length=128)
    description = _check_text(description, field="description", max_length=255, min_length=0)
    try:
        with transaction.atomic():
            role = Role.objects.create(key=key, name=name, description=description)
            _audit(
                actor=actor,
                action=Action.ROLE_CREATED,
                target_type="role",
                target_id=role.id,
                details={"key": key, "name": name},
            )
    except IntegrityError as exc:
        raise errors.RoleKeyTaken(field="key") from exc
    return role


def role_change_permissions(
    *, role: Role, add: Sequence[str] = (), remove: Sequence[str] = (), actor: Actor
) -> Role:
    """Grant the system permissions in ``add`` and withdraw those in ``remove`` (by key)."""
    keys = set(add) | set(remove)
    known = {p.key: p for p in SystemPermission.objects.filter(key__in=keys)}
    for key in keys:
        if key not in known:
            raise errors.PermissionNotFound(
                f"No system permission {key[:80]!r}.", field="system_permissions"
            )
    with transaction.atomic():
        role.system_permissions.add(*(known[k] for k in add))
        role.system_permissions.remove(*(known[k] for k in remove))
        _audit(
            actor=actor,
            action=Action.ROLE_PERMISSIONS_CHANGED,
            target_type="role",
            target_id=role.id,
            details={"added": sorted(add), "removed": sorted(remove)},
        )
    return role


def membership_add(
    *, organization: Organization, user: Any, roles: Iterable[Role] = (), actor: Actor
) -> Membership:
    """Add ``user`` to ``organization`` with ``roles``; for a member, set their roles."""
    roles = list(roles)
    with transaction.atomic():
        # An organization or user being deleted meanwhile: wait for it, then refuse by name
        # (not with the foreign-key violation the insert would meet).
        _hold_owner(organization)
        _hold_owner(user)
        membership, created = Membership.objects.get_or_create(organization=organization, user=user)
        membership.roles.set(roles)
        _audit(
            actor=actor,
            action=Action.MEMBERSHIP_ADDED if created else Action.MEMBERSHIP_ROLES_CHANGED,
            target_type="membership",
            target_id=user.public_id,
            organization=organization,
            user_public_id=user.public_id,
            details={"roles": sorted(r.key for r in roles)},
        )
    return membership


def membership_remove(*, organization: Organization, user: Any, actor: Actor) -> None:
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(organization=organization, user=user).delete()
        if deleted:
            _audit(
                actor=actor,
                action=Action.MEMBERSHIP_REMOVED,
                target_type="membership",
                target_id=user.public_id,
                organization=organization,
                user_public_id=user.public_id,
            )


# --------------------------------------------------------------------------- M2M applications


@dataclass(frozen=True)
class IssuedApplication:
    """An M2M application just created, with its client secret: show it once."""

    application: Any
    client_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"IssuedApplication(client_id={self.application.client_id!r}, client_secret=<hidden>)"
        )


def _check_management_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(scopes))
    unknown = [s for s in chosen if s not in MANAGEMENT_SCOPES]
    if unknown:
        raise errors.ValidationFailed(
            f"Unknown Management API scope(s): {', '.join(str(u)[:64] for u in unknown)}.",
            code="INVALID_SCOPE",
            field="scopes",
        )
    return chosen


def m2m_application_create(*, name: str, scopes: Iterable[str], actor: Actor) -> IssuedApplication:
    """Create a confidential client-credentials application granted ``scopes``.

    The client secret is stored hashed by django-oauth-toolkit; the plaintext exists only
    in the returned value.
    """
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    name = _check_text(name, field="name", max_length=255)
    chosen = _check_management_scopes(scopes)
    secret = generate_client_secret()
    with transaction.atomic():
        application = Application(
            name=name,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
        )
        application.save()
        M2MGrant.objects.create(application=application, scopes=" ".join(chosen))
        _audit(
            actor=actor,
            action=Action.APPLICATION_CREATED,
            target_type="application",
            target_id=str(application.client_id)[:64],
            details={"name": name, "scopes": chosen},
        )
    return IssuedApplication(application=application, client_secret=secret)


def m2m_application_set_scopes(
    *, application: Any, scopes: Iterable[str], actor: Actor
) -> M2MGrant:
    """Replace the scopes granted to ``application``. New tokens carry only the new grant;
    tokens already issued keep only the scopes still granted, from their next request
    (``apikeys.oauth``)."""
    m2m_application_update(application=application, scopes=scopes, actor=actor)
    return M2MGrant.objects.get(application=application)


# --------------------------------------------------------------------------- audit, for other apps


def audit_event_record(
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    organization: Organization | None = None,
    user_public_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one ``AuditEvent`` for a change made by another app's service (the portal's
    links and self-serve settings). Call it inside that service's ``transaction.atomic`` so
    the change and its audit land together or not at all."""
    return _audit(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        organization=organization,
        user_public_id=user_public_id,
        details=details,
    )


# --------------------------------------------------------------------------- admin
# Writes the Django admin needs beyond those above (apikeys/admin/). Same rules: keyword-only
# arguments, one transaction with its AuditEvent, the acting admin as actor.


def user_update(
    *,
    user: Any,
    email: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    is_active: bool | None = None,
    is_staff: bool | None = None,
    is_superuser: bool | None = None,
    groups: Iterable[Any] | None = None,
    user_permissions: Iterable[Any] | None = None,
    actor: Actor,
) -> Any:
    """Change a user's profile, status or admin permissions; ``None`` leaves a value as is.

    Records one ``user.updated`` event naming what changed (never a password), or none when
    nothing did. A user whose sign-in name is their email (every user ``user_create`` makes)
    keeps signing in with their new email.
    """
    changed: dict[str, Any] = {}
    try:
        with transaction.atomic():
            locked = User.objects.select_for_update().get(pk=user.pk)
            if email is not None:
                email = _check_email(email)
                if email != locked.email:
                    clash = (
                        User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email))
                        .exclude(pk=locked.pk)
                        .exists()
                    )
                    if clash:
                        raise errors.EmailTaken(field="email")
                    if locked.username.lower() == locked.email.lower():
                        locked.username = email
                    locked.email = email
                    changed["email"] = email
            texts = {"first_name": given_name, "last_name": family_name}
            for attr, value in texts.items():
                if value is not None:
                    value = _check_text(value, field=attr, max_length=150, min_length=0)
                    if value != getattr(locked, attr):
                        setattr(locked, attr, value)
                        changed[attr] = value
            flags = {"is_active": is_active, "is_staff": is_staff, "is_superuser": is_superuser}
            for attr, value in flags.items():
                if value is not None and bool(value) != getattr(locked, attr):
                    setattr(locked, attr, bool(value))
                    changed[attr] = bool(value)
            if changed:
                fields = list(changed) + (["username"] if "email" in changed else [])
                locked.save(update_fields=fields)
            # Admin permissions are security-relevant: record the new set, by name.
            for attr, wanted, label in [
                ("groups", groups, _group_label),
                ("user_permissions", user_permissions, _permission_label),
            ]:
                if wanted is not None:
                    new_set = _replace_related(getattr(locked, attr), wanted, label)
                    if new_set is not None:
                        changed[attr] = new_set
            if changed:
                _audit(
                    actor=actor,
                    action=Action.USER_UPDATED,
                    target_type="user",
                    target_id=locked.public_id,
                    user_public_id=locked.public_id,
                    details=changed,
                )
    except IntegrityError as exc:
        raise errors.EmailTaken(field="email") from exc
    return locked


def _replace_related(manager: Any, wanted: Iterable[Any], label: Any) -> list[str] | None:
    """Make the many-to-many set behind ``manager`` exactly ``wanted``: the new set's labels,
    sorted, when that changed it; ``None`` (and no write) when it already was."""
    wanted = list(wanted)
    if {o.pk for o in wanted} == set(manager.values_list("pk", flat=True)):
        return None
    manager.set(wanted)
    return sorted(label(o) for o in wanted)


def _group_label(group: Any) -> str:
    return str(group.name)


def _permission_label(permission: Any) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _revoke_owned_keys(
    keys: QuerySet[ApiKey],
    *,
    organization: Organization | None = None,
    user_public_id: str = "",
    actor: Actor,
    reason: str,
) -> list[str]:
    """Revoke every active key in ``keys`` (all of one owner), each with its own
    ``api_key.revoked`` event giving ``reason``; returns the ids revoked. Three statements
    however many keys: an owner with thousands of keys goes in one short transaction."""
    ids = list(
        keys.select_for_update()
        .filter(status=ApiKey.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if ids:
        ApiKey.objects.filter(pk__in=ids).update(
            status=ApiKey.Status.REVOKED,
            revoked_on=timezone.now(),
            previous_digest=None,
            previous_expires_at=None,
        )
        AuditEvent.objects.bulk_create(
            _audit_event(
                actor=actor,
                action=Action.API_KEY_REVOKED,
                target_type="api_key",
                target_id=pk,
                organization=organization,
                user_public_id=user_public_id,
                details={"reason": reason},
            )
            for pk in ids
        )
    return ids


def user_delete(*, user: Any, actor: Actor) -> None:
    """Delete ``user`` with their memberships and portal links. Their API keys are never
    deleted: the active ones are revoked first (each audited), and all stay readable with
    the user's id, as does every audit event that names them."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        revoked = _revoke_owned_keys(
            ApiKey.objects.filter(user=locked),
            user_public_id=locked.public_id,
            actor=actor,
            reason="user deleted",
        )
        _audit(
            actor=actor,
            action=Action.USER_DELETED,
            target_type="user",
            target_id=locked.public_id,
            user_public_id=locked.public_id,
            details={"email": locked.email, "revoked_api_keys": len(revoked)},
        )
        locked.delete()


def organization_delete(*, organization: Organization, actor: Actor) -> None:
    """Delete ``organization`` with its memberships and portal links. Its API keys are never
    deleted: the active ones are revoked first (each audited), and all stay readable with
    the organization's code, which no new organization can take."""
    with transaction.atomic():
        # Locking the row also holds back a key issued or a member added at the same moment
        # (_hold_owner waits on the row, then refuses): nothing slips in after the revoke.
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        revoked = _revoke_owned_keys(
            ApiKey.objects.filter(organization=locked),
            organization=locked,
            actor=actor,
            reason="organization deleted",
        )
        _audit(
            actor=actor,
            action=Action.ORGANIZATION_DELETED,
            target_type="organization",
            target_id=locked.code,
            organization=locked,
            details={"name": locked.name, "revoked_api_keys": len(revoked)},
        )
        locked.delete()


# --------------------------------------------------------------------------- staff groups
# Django's auth groups: bundles of admin permissions for platform staff. Who may issue,
# rotate or revoke keys in the admin is decided here, so every change is audited.


def staff_group_create(*, name: str, permissions: Iterable[Any] = (), actor: Actor) -> Any:
    name = _check_text(name, field="name", max_length=150)
    chosen = list(permissions)
    try:
        with transaction.atomic():
            group = Group.objects.create(name=name)
            group.permissions.set(chosen)
            _audit(
                actor=actor,
                action=Action.STAFF_GROUP_CREATED,
                target_type="staff_group",
                target_id=str(group.pk),
                details={"name": name, "permissions": sorted(_permission_label(p) for p in chosen)},
            )
    except IntegrityError as exc:
        raise errors.GroupNameTaken(field="name") from exc
    return group


def staff_group_update(
    *, group: Any, name: str | None = None, permissions: Iterable[Any] | None = None, actor: Actor
) -> Any:
    """Rename a staff group and/or replace its permissions (``None`` leaves a value as is):
    one ``staff_group.updated`` event naming what changed, or none when nothing did."""
    name = None if name is None else _check_text(name, field="name", max_length=150)
    changed: dict[str, Any] = {}
    try:
        with transaction.atomic():
            locked = Group.objects.select_for_update().get(pk=group.pk)
            if name is not None and name != locked.name:
                locked.name = name
                locked.save(update_fields=["name"])
                changed["name"] = name
            if permissions is not None:
                new_set = _replace_related(locked.permissions, permissions, _permission_label)
                if new_set is not None:
                    changed["permissions"] = new_set
            if changed:
                _audit(
                    actor=actor,
                    action=Action.STAFF_GROUP_UPDATED,
                    target_type="staff_group",
                    target_id=str(locked.pk),
                    details=changed,
                )
    except IntegrityError as exc:
        raise errors.GroupNameTaken(field="name") from exc
    return locked


def staff_group_delete(*, group: Any, actor: Actor) -> None:
    """Delete a staff group: its members keep their accounts and lose what it granted."""
    with transaction.atomic():
        locked = Group.objects.select_for_update().get(pk=group.pk)
        _audit(
            actor=actor,
            action=Action.STAFF_GROUP_DELETED,
            target_type="staff_group",
            target_id=str(locked.pk),
            details={"name": locked.name, "members": locked.user_set.count()},
        )
        locked.delete()


def role_update(*, role: Role, name: str, description: str = "", actor: Actor) -> Role:
    """Change a role's name and description. Its key never changes: callers refer to it."""
    name = _check_text(name, field="name", max_length=128)
    description = _check_text(description, field="description", max_length=255, min_length=0)
    with transaction.atomic():
        locked = Role.objects.select_for_update().get(pk=role.pk)
        if (locked.name, locked.description) == (name, description):
            return locked
        locked.name, locked.description = name, description
        locked.save(update_fields=["name", "description"])
        _audit(
            actor=actor,
            action=Action.ROLE_UPDATED,
            target_type="role",
            target_id=locked.id,
            details={"name": name, "description": description},
        )
    return locked


def m2m_application_update(
    *, application: Any, name: str | None = None, scopes: Iterable[str] | None = None, actor: Actor
) -> Any:
    """Rename an M2M application and/or replace its granted scopes (``None`` leaves a value
    as is); its credentials stay. One ``application.updated`` event names everything that
    changed, or none is recorded when nothing did."""
    name = None if name is None else _check_text(name, field="name", max_length=255)
    chosen = None if scopes is None else _check_management_scopes(scopes)
    changed: dict[str, Any] = {}
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        if name is not None and name != locked.name:
            locked.name = name
            locked.save(update_fields=["name", "updated"])
            changed["name"] = name
        if chosen is not None:
            grant, created = M2MGrant.objects.get_or_create(
                application=locked, defaults={"scopes": " ".join(chosen)}
            )
            if created or grant.scope_list != chosen:
                grant.scopes = " ".join(chosen)
                grant.save(update_fields=["scopes"])
                changed["scopes"] = chosen
        if changed:
            _audit(
                actor=actor,
                action=Action.APPLICATION_UPDATED,
                target_type="application",
                target_id=str(locked.client_id)[:64],
                details=changed,
            )
    return locked


def _m2m_application_set_disabled(*, application: Any, disabled: bool, actor: Actor) -> M2MGrant:
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        grant, _created = M2MGrant.objects.get_or_create(application=locked)
        if grant.is_active == disabled:
            grant.disabled_at = timezone.now() if disabled else None
            grant.save(update_fields=["disabled_at"])
            _audit(
                actor=actor,
                action=Action.APPLICATION_DISABLED if disabled else Action.APPLICATION_ENABLED,
                target_type="application",
                target_id=str(locked.client_id)[:64],
                details={"name": locked.name},
            )
    return grant


def m2m_application_disable(*, application: Any, actor: Actor) -> M2MGrant:
    """Disable an M2M application: it gets no new token (``invalid_client``) and the tokens
    it holds are refused from their next request (401). Its secret and grant stay, for
    :func:`m2m_application_enable`. Disabling a disabled application records nothing."""
    return _m2m_application_set_disabled(application=application, disabled=True, actor=actor)


def m2m_application_enable(*, application: Any, actor: Actor) -> M2MGrant:
    """Re-enable a disabled M2M application: its secret and unexpired tokens work again.
    Enabling an enabled application records nothing."""
    return _m2m_application_set_disabled(application=application, disabled=False, actor=actor)


def m2m_application_regenerate_secret(*, application: Any, actor: Actor) -> IssuedApplication:
    """Give an M2M application a new client secret: the old one stops working at once, and
    so do the tokens it already holds (whoever has the leaked secret may hold tokens too);
    the service fetches a new token with the new secret. The plaintext exists only in the
    returned value: show it once."""
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_access_token_model, get_refresh_token_model

    secret = generate_client_secret()
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        locked.client_secret = secret
        locked.hash_client_secret = True
        locked.save(update_fields=["client_secret", "hash_client_secret", "updated"])
        get_refresh_token_model().objects.filter(application=locked).delete()
        AccessToken = get_access_token_model()
        _total, by_model = AccessToken.objects.filter(application=locked).delete()
        ended = by_model.get(AccessToken._meta.label, 0)
        _audit(
            actor=actor,
            action=Action.APPLICATION_SECRET_REGENERATED,
            target_type="application",
            target_id=str(locked.client_id)[:64],
            details={"name": locked.name, "tokens_ended": ended},
        )
    return IssuedApplication(application=locked, client_secret=secret)


def m2m_application_delete(*, application: Any, actor: Actor) -> None:
    """Delete an M2M application with its grant and tokens: its credentials stop working at
    once. Keys it created stay, with its name as their creator."""
    with transaction.atomic():
        locked = type(application).objects.select_for_update().get(pk=application.pk)
        _audit(
            actor=actor,
            action=Action.APPLICATION_DELETED,
            target_type="application",
            target_id=str(locked.client_id)[:64],
            details={"name": locked.name},
        )
        locked.delete()
