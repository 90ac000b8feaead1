"""Key policies: limits on the keys of an organization and of its members.

Rules:

- A policy has three limits, each ``None`` (no limit) or a whole number:
  ``max_lifetime_days`` (1-3650), ``max_active_keys`` (1-10000), ``max_idle_days`` (1-3650).
- An organization's own policy (:class:`~apikeys.models.OrganizationKeyPolicy`) applies to
  its keys; an organization without one has the platform default
  (:class:`~apikeys.models.PlatformKeyPolicy`).
- A user's own keys have the *strictest* policy of the organizations they are a member of,
  limit by limit (the smallest number; no limit only where none of them has one), so that
  joining a second organization never loosens what the first one asked for. A user in no
  organization has the platform default.
- Enforced in :func:`apikeys.services.api_key_issue`, the one path of every door:
  ``max_lifetime_days`` gives a key created without ``expires_at`` that lifetime and refuses
  a later one (``EXPIRES_AT_BEYOND_POLICY``); ``max_active_keys`` refuses a key past the
  limit (``KEY_LIMIT_REACHED``), exactly, under concurrent creates (the owner's row is
  locked while the keys are counted). Active means not revoked and not expired.
- Changing a policy never changes existing keys; only :func:`api_keys_revoke_idle` (the
  scheduled job) revokes keys, those idle past ``max_idle_days``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone

from apikeys import exceptions as errors
from apikeys.models import (
    POLICY_MAX_ACTIVE_KEYS,
    POLICY_MAX_DAYS,
    ApiKey,
    KeyPolicyFields,
    Organization,
    OrganizationKeyPolicy,
    PlatformKeyPolicy,
)
from apikeys.services._shared import Action
from apikeys.services.audit import Actor, audit_event_record

User = get_user_model()

# The reason an idle key's revocation records (``api_key.revoked`` with this reason is
# what the webhooks send as ``api_key.idle_revoked``).
IDLE_REASON = "idle"

_RANGES = {
    "max_lifetime_days": POLICY_MAX_DAYS,
    "max_active_keys": POLICY_MAX_ACTIVE_KEYS,
    "max_idle_days": POLICY_MAX_DAYS,
}


@dataclass(frozen=True)
class KeyPolicy:
    """The limits that apply to an owner's keys, and where they come from: ``organization``
    (the organization's own policy), ``platform_default``, or ``strictest`` (a user's keys:
    the strictest of their organizations')."""

    max_lifetime_days: int | None = None
    max_active_keys: int | None = None
    max_idle_days: int | None = None
    source: str = "platform_default"

    @classmethod
    def of(cls, row: KeyPolicyFields, *, source: str) -> KeyPolicy:
        return cls(
            max_lifetime_days=row.max_lifetime_days,
            max_active_keys=row.max_active_keys,
            max_idle_days=row.max_idle_days,
            source=source,
        )

    def limits(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}

    def is_limited(self) -> bool:
        return any(v is not None for v in self.limits().values())


def _strictest(policies: list[KeyPolicy]) -> KeyPolicy:
    def smallest(name: str) -> int | None:
        values = [getattr(p, name) for p in policies if getattr(p, name) is not None]
        return min(values) if values else None

    return KeyPolicy(
        max_lifetime_days=smallest("max_lifetime_days"),
        max_active_keys=smallest("max_active_keys"),
        max_idle_days=smallest("max_idle_days"),
        source="strictest",
    )


def key_policy_for_organization(
    organization: Organization, *, default: KeyPolicy | None = None
) -> KeyPolicy:
    """The policy of ``organization``'s keys: its own, else the platform default."""
    own = OrganizationKeyPolicy.objects.filter(organization=organization).first()
    if own is not None:
        return KeyPolicy.of(own, source="organization")
    return default or platform_key_policy()


def platform_key_policy() -> KeyPolicy:
    """The platform default. A read only: without its row (a fresh install) no limits,
    the row's own defaults, so that issuing a key never has to write it."""
    row = PlatformKeyPolicy.objects.filter(pk=PlatformKeyPolicy.SINGLETON_ID).first()
    return KeyPolicy.of(row or PlatformKeyPolicy(), source="platform_default")


def key_policy_for_user(user: Any, *, default: KeyPolicy | None = None) -> KeyPolicy:
    """The policy of ``user``'s own keys: the strictest of their organizations' (each its
    own policy or the platform default), or the platform default if they are in none."""
    default = default or platform_key_policy()
    organization_ids = list(
        Organization.objects.filter(memberships__user_id=user.pk).values_list("pk", flat=True)
    )
    if not organization_ids:
        return default
    own = {
        row.organization_id: KeyPolicy.of(row, source="organization")
        for row in OrganizationKeyPolicy.objects.filter(organization_id__in=organization_ids)
    }
    return _strictest([own.get(pk, default) for pk in organization_ids])


def key_policy_for_owner(
    *, organization: Organization | None = None, user: Any = None
) -> KeyPolicy:
    """The policy of the keys of one owner (exactly one of ``organization`` / ``user``)."""
    if organization is not None:
        return key_policy_for_organization(organization)
    return key_policy_for_user(user)


def active_key_count(*, organization: Organization | None = None, user: Any = None) -> int:
    """The owner's active keys: not revoked, not expired (what ``max_active_keys`` counts)."""
    owner = {"organization": organization} if organization is not None else {"user_id": user.pk}
    return (
        ApiKey.objects.filter(status=ApiKey.Status.ACTIVE, **owner)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .count()
    )


def policy_expires_at(policy: KeyPolicy, expires_at: datetime | None, *, now: datetime) -> Any:
    """``expires_at`` as ``policy`` allows it: the policy's lifetime when none is asked,
    ``EXPIRES_AT_BEYOND_POLICY`` when a later one is."""
    if policy.max_lifetime_days is None:
        return expires_at
    latest = now + timedelta(days=policy.max_lifetime_days)
    if expires_at is None:
        return latest
    if expires_at > latest:
        raise errors.ExpiresAtBeyondPolicy(
            f"The key policy allows keys to live at most {policy.max_lifetime_days} days: "
            f"expires_at must be {latest.isoformat(timespec='seconds')} or earlier.",
            field="expires_at",
        )
    return expires_at


def lock_owner_for_counting(owner: Any) -> None:
    """Inside the transaction that issues a key: serialize the issuers of one owner, so that
    counting its active keys and adding one are a single step (``max_active_keys`` exact
    under concurrency). Before any read of the transaction (SQLite takes its write lock here,
    and a transaction that has read cannot take it later).

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` of the owner's row (it waits for the other
    issuers, and a delete's ``FOR UPDATE``; not the ``FOR KEY SHARE`` of ``hold_owner``).
    SQLite: an update of the row that changes nothing, which takes the database's one write
    lock until the transaction ends."""
    model = Organization if isinstance(owner, Organization) else User
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        list(
            model.objects.select_for_update(no_key=True)
            .filter(pk=owner.pk)
            .values_list("pk", flat=True)
        )
        return
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    with connection.cursor() as cursor:
        # Names from the model's own meta, quoted; the value is a bound parameter.
        cursor.execute(f"UPDATE {table} SET {pk} = {pk} WHERE {pk} = %s", [owner.pk])  # nosec B608


def check_active_key_limit(
    policy: KeyPolicy, *, organization: Organization | None = None, user: Any = None
) -> None:
    """``KEY_LIMIT_REACHED`` if the owner already holds ``max_active_keys`` active keys
    (inside the issuing transaction, after :func:`lock_owner_for_counting`)."""
    limit = policy.max_active_keys
    if limit is None:
        return
    if active_key_count(organization=organization, user=user) >= limit:
        whose = f"Organization {organization.code}" if organization is not None else "This user"
        raise errors.KeyLimitReached(
            f"{whose} already has {limit} active API key{'s' if limit != 1 else ''}, the most "
            "its key policy allows: revoke one first."
        )


# --------------------------------------------------------------------------- writes


def _checked_limits(values: dict[str, Any]) -> dict[str, int | None]:
    for name, top in _RANGES.items():
        value = values[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise errors.ValidationFailed(
                f"{name} must be a whole number from 1 to {top}, or null for no limit.",
                code="INVALID_FIELD",
                field=name,
            )
    return {name: values[name] for name in _RANGES}


def _changes(row: KeyPolicyFields | None, wanted: dict[str, int | None]) -> dict[str, list[Any]]:
    # A new row is compared with no limits at all.
    return {
        name: [getattr(row, name, None), value]
        for name, value in wanted.items()
        if getattr(row, name, None) != value
    }


def organization_key_policy_set(
    *,
    organization: Organization,
    max_lifetime_days: int | None,
    max_active_keys: int | None,
    max_idle_days: int | None,
    actor: Actor,
) -> KeyPolicy:
    """Give ``organization`` a policy of its own (in place of the platform default).
    Existing keys are not changed. Audited with what changed (also when it is the first)."""
    wanted = _checked_limits(
        {
            "max_lifetime_days": max_lifetime_days,
            "max_active_keys": max_active_keys,
            "max_idle_days": max_idle_days,
        }
    )
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        row = OrganizationKeyPolicy.objects.filter(organization=organization).first()
        changes = _changes(row, wanted)
        if row is None:
            row = OrganizationKeyPolicy.objects.create(organization=organization, **wanted)
            created = True
        else:
            created = False
            if changes:
                for name, value in wanted.items():
                    setattr(row, name, value)
                row.updated_on = timezone.now()
                row.save()
        if changes or created:
            audit_event_record(
                actor=actor,
                action=Action.KEY_POLICY_CHANGED,
                target_type="organization",
                target_id=organization.code,
                organization=organization,
                details={"changes": changes, **({"created": True} if created else {})},
            )
    return KeyPolicy.of(row, source="organization")


def organization_key_policy_clear(*, organization: Organization, actor: Actor) -> KeyPolicy:
    """Remove ``organization``'s own policy: the platform default applies again (returned).
    Nothing happens, and nothing is audited, if it had none."""
    with transaction.atomic():
        row = OrganizationKeyPolicy.objects.select_for_update().filter(organization=organization)
        existing = row.first()
        if existing is not None:
            before = {name: getattr(existing, name) for name in _RANGES}
            existing.delete()
            audit_event_record(
                actor=actor,
                action=Action.KEY_POLICY_CHANGED,
                target_type="organization",
                target_id=organization.code,
                organization=organization,
                details={"removed": before},
            )
    return platform_key_policy()


def platform_key_policy_update(
    *,
    max_lifetime_days: int | None,
    max_active_keys: int | None,
    max_idle_days: int | None,
    actor: Actor,
) -> KeyPolicy:
    """Change the platform default policy. Existing keys are not changed. Audited with what
    changed; nothing is written when nothing changes."""
    wanted = _checked_limits(
        {
            "max_lifetime_days": max_lifetime_days,
            "max_active_keys": max_active_keys,
            "max_idle_days": max_idle_days,
        }
    )
    with transaction.atomic():
        PlatformKeyPolicy.load()
        row = PlatformKeyPolicy.objects.select_for_update().get(pk=PlatformKeyPolicy.SINGLETON_ID)
        changes = _changes(row, wanted)
        if changes:
            for name, value in wanted.items():
                setattr(row, name, value)
            row.updated_on = timezone.now()
            row.save()
            audit_event_record(
                actor=actor,
                action=Action.KEY_POLICY_CHANGED,
                target_type="platform",
                target_id="default",
                details={"changes": changes},
            )
    return KeyPolicy.of(row, source="platform_default")


# --------------------------------------------------------------------------- idle keys

# Candidates are re-read (with their live counts) and revoked this many at a time.
IDLE_BATCH = 500


def api_keys_revoke_idle(*, now: datetime | None = None) -> int:
    """Revoke every active key not verified for its owner's ``max_idle_days`` (counted from
    its creation if it was never verified), each through :func:`api_key_revoke` with reason
    ``idle`` and the system as actor. Returns how many were revoked. Safe to run twice.

    Verifications counted in Redis and not yet written back (``apikeys.keycache``) count:
    candidates are chosen by the stored ``last_verified_on``, which can only be older than
    the live one, then re-read through the ``ApiKey`` queryset, which adds the live counts,
    and judged again on that."""
    # Imported here: keys imports this module (the policy checks of api_key_issue).
    from apikeys.services.keys import api_key_revoke

    now = now or timezone.now()
    default = platform_key_policy()
    limits: list[int] = [
        days
        for days in OrganizationKeyPolicy.objects.exclude(max_idle_days=None).values_list(
            "max_idle_days", flat=True
        )
        if days is not None
    ]
    if default.max_idle_days is not None:
        limits.append(default.max_idle_days)
    if not limits:
        return 0
    # No key used more recently than this is idle under any policy.
    cutoff = now - timedelta(days=min(limits))
    candidates = list(
        ApiKey.objects.filter(status=ApiKey.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(
            Q(last_verified_on__lte=cutoff)
            | Q(last_verified_on__isnull=True, created_on__lte=cutoff)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    policies: dict[tuple[str, Any], KeyPolicy] = {}
    revoked = 0
    for start in range(0, len(candidates), IDLE_BATCH):
        batch = ApiKey.objects.filter(pk__in=candidates[start : start + IDLE_BATCH]).select_related(
            "organization", "user"
        )
        for key in batch:  # read with the live counts merged
            if key.organization is not None:
                owner: tuple[str, Any] = ("organization", key.organization_id)
                if owner not in policies:
                    policies[owner] = key_policy_for_organization(key.organization, default=default)
            elif key.user is not None:
                owner = ("user", key.user_id)
                if owner not in policies:
                    policies[owner] = key_policy_for_user(key.user, default=default)
            else:
                continue
            idle_days = policies[owner].max_idle_days
            if idle_days is None or key.status != ApiKey.Status.ACTIVE:
                continue
            last_used = key.last_verified_on or key.created_on
            if last_used > now - timedelta(days=idle_days):
                continue
            started = timezone.now()
            result = api_key_revoke(
                api_key=key,
                actor=Actor.system(),
                reason=IDLE_REASON,
                details={
                    "max_idle_days": idle_days,
                    "last_verified_on": (
                        key.last_verified_on.isoformat() if key.last_verified_on else None
                    ),
                },
            )
            # api_key_revoke is idempotent: a key revoked meanwhile by someone else keeps
            # its earlier revoked_on and is not counted.
            if result.revoked_on is not None and result.revoked_on >= started:
                revoked += 1
    return revoked
