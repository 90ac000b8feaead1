"""API keys: issue, rotate, revoke (one owner each: an organization or a user).

Issuing applies the owner's key policy (:mod:`apikeys.services.policies`): the longest
lifetime and the most active keys; rotating keeps ``expires_at`` as it is.

A key's plaintext exists only in the :class:`IssuedKey` returned by :func:`api_key_issue`
and :func:`api_key_rotate`; the database keeps its HMAC digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apikeys import conf, crypto, keycache, limits
from apikeys import exceptions as errors
from apikeys.models import Api, ApiKey, AuditEvent, Organization, Scope
from apikeys.services._shared import Action, check_text, hashing_secret, hold_owner
from apikeys.services.audit import Actor, audit_event_record, audit_event_unsaved
from apikeys.services.policies import (
    check_active_key_limit,
    key_policy_for_owner,
    lock_owner_for_counting,
    policy_expires_at,
)
from apikeys.services.webhooks import event_record, events_record


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
    ratelimit: Any = None,
    credits: Any = None,
    actor: Actor,
) -> IssuedKey:
    """Issue a key for ``api`` owned by exactly one of ``organization`` or ``user``, with
    optional usage limits (``ratelimit``, ``credits``: :mod:`apikeys.limits` shapes, as
    dataclasses or as the API's JSON objects).

    The owner's key policy applies: without ``expires_at`` the key gets the policy's longest
    lifetime, a later ``expires_at`` is ``EXPIRES_AT_BEYOND_POLICY``, and a key past the
    policy's ``max_active_keys`` is ``KEY_LIMIT_REACHED`` (exact under concurrency: the
    owner's row is locked while its keys are counted)."""
    name = check_text(name, field="name", max_length=128)
    rate = limits.parse_ratelimit(ratelimit)
    allowance = limits.parse_credits(credits)
    if organization is None and user is None:
        raise errors.OwnerRequired()
    if organization is not None and user is not None:
        raise errors.OwnerAmbiguous()
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed(
            "expires_at must be in the future.", code="EXPIRES_AT_IN_PAST", field="expires_at"
        )
    chosen = resolve_scopes(api=api, scopes=scopes)
    policy = key_policy_for_owner(organization=organization, user=user)
    expires_at = policy_expires_at(policy, expires_at, now=timezone.now())
    plaintext = crypto.generate_key()
    with transaction.atomic():
        if policy.max_active_keys is not None:
            lock_owner_for_counting(organization or user)
        hold_owner(organization or user)
        check_active_key_limit(policy, organization=organization, user=user)
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
            digest=crypto.digest(plaintext, hashing_secret()),
            key_prefix=crypto.display_prefix(plaintext),
            key_suffix=crypto.display_suffix(plaintext),
            created_by=actor.label[:200],
            created_by_user=actor.user if actor.application is None else None,
            created_by_application=actor.application,
            expires_at=expires_at,
            **_limit_columns(rate, allowance, timezone.now()),
        )
        api_key.scopes.set(chosen)
        audit_event_record(
            actor=actor,
            action=Action.API_KEY_ISSUED,
            target_type="api_key",
            target_id=api_key.id,
            organization=organization,
            user_public_id=api_key.user_public_id,
            details={
                "name": name,
                "api_id": api.id,
                "scopes": [s.key for s in chosen],
                **({"ratelimit": limits.ratelimit_json(rate.limit, rate.duration)} if rate else {}),
                **({"credits": _credits_details(allowance)} if allowance else {}),
            },
        )
        event_record(event_type="api_key.created", api_key=api_key, actor=actor)
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def _limit_columns(
    rate: limits.RateLimit | None, allowance: limits.Credits | None, now: datetime
) -> dict[str, Any]:
    """The key row's columns for these limits (None: no such limit)."""
    return {
        "ratelimit_limit": rate.limit if rate else None,
        "ratelimit_duration": rate.duration if rate else None,
        "credits_remaining": allowance.remaining if allowance else None,
        "credits_refill_interval": allowance.refill_interval if allowance else "",
        "credits_refill_amount": allowance.refill_amount if allowance else None,
        # The remaining credits given belong to the current period: the next refill is at
        # the start of the next one.
        "credits_period": (limits.period_of(allowance.refill_interval, now) if allowance else None),
        "credits_exceeded_period": None,
    }


def _credits_details(allowance: limits.Credits | None) -> dict[str, Any] | None:
    if allowance is None:
        return None
    return limits.credits_json(
        allowance.remaining, allowance.refill_interval, allowance.refill_amount
    )


class _Unset:
    """No value given (``None`` means "remove the limit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def api_key_update(
    *,
    api_key: ApiKey,
    actor: Actor,
    name: Any = UNSET,
    ratelimit: Any = UNSET,
    credits: Any = UNSET,
    expires_at: Any = UNSET,
) -> ApiKey:
    """Change an active key's ``name``, usage limits or ``expires_at`` (each only when
    given; ``None`` removes a limit or the expiry). Every worker sees the change at once
    (:func:`keycache.invalidate`); the audit event lists each field's old and new value.
    A revoked or expired key cannot be changed (``API_KEY_REVOKED`` / ``API_KEY_EXPIRED``).

    Credits given here replace the remaining count and start the current refill period;
    a ``ratelimit`` change keeps the verifications already in the window."""
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = check_text(name, field="name", max_length=128)
    if ratelimit is not UNSET:
        changes["ratelimit"] = limits.parse_ratelimit(ratelimit)
    if credits is not UNSET:
        changes["credits"] = limits.parse_credits(credits)
    now = timezone.now()
    if expires_at is not UNSET:
        if expires_at is not None and (not isinstance(expires_at, datetime) or expires_at <= now):
            raise errors.ValidationFailed(
                "expires_at must be in the future.", code="EXPIRES_AT_IN_PAST", field="expires_at"
            )
        changes["expires_at"] = expires_at
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.status == ApiKey.Status.REVOKED:
            raise errors.ApiKeyRevoked("A revoked API key cannot be changed.")
        if locked.is_expired:
            raise errors.ApiKeyExpired("An expired API key cannot be changed.")
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        fields: list[str] = []
        if "name" in changes:
            before["name"], after["name"] = locked.name, changes["name"]
            locked.name = changes["name"]
            fields.append("name")
        if "expires_at" in changes:
            # The owner's key policy holds here too, counted from the key's creation: no
            # later expiry than its longest lifetime (and no "never" under one).
            policy = key_policy_for_owner(
                organization=locked.organization,
                user=None if locked.organization is not None else locked.user,
            )
            allowed = policy_expires_at(policy, changes["expires_at"], now=locked.created_on)
            if allowed is not None and allowed <= now:
                raise errors.ExpiresAtBeyondPolicy(
                    "The key policy's longest lifetime for this key has passed: it cannot "
                    "be extended.",
                    field="expires_at",
                )
            changes["expires_at"] = allowed
            before["expires_at"] = locked.expires_at.isoformat() if locked.expires_at else None
            after["expires_at"] = (
                changes["expires_at"].isoformat() if changes["expires_at"] else None
            )
            locked.expires_at = changes["expires_at"]
            fields.append("expires_at")
        if "ratelimit" in changes:
            rate = changes["ratelimit"]
            before["ratelimit"] = limits.ratelimit_json(
                locked.ratelimit_limit, locked.ratelimit_duration
            )
            after["ratelimit"] = limits.ratelimit_json(rate.limit, rate.duration) if rate else None
            locked.ratelimit_limit = rate.limit if rate else None
            locked.ratelimit_duration = rate.duration if rate else None
            fields += ["ratelimit_limit", "ratelimit_duration"]
        if "credits" in changes:
            allowance = changes["credits"]
            before["credits"] = limits.credits_json(
                locked.credits_remaining,
                locked.credits_refill_interval,
                locked.credits_refill_amount,
            )
            after["credits"] = _credits_details(allowance)
            for column, value in _limit_columns(None, allowance, now).items():
                if column.startswith("credits_"):
                    setattr(locked, column, value)
                    fields.append(column)
        if "credits" in changes or "ratelimit" in changes:
            # Credits kept in Redis for the old value are dropped (apikeys.keycache).
            locked.limits_version += 1
            fields.append("limits_version")
        if not fields:
            return locked
        keycache.invalidate([locked.pk])
        locked.save(update_fields=fields)
        audit_event_record(
            actor=actor,
            action=Action.API_KEY_UPDATED,
            target_type="api_key",
            target_id=locked.id,
            organization=locked.organization,
            user_public_id=locked.user_public_id,
            details={"before": before, "after": after},
        )
    return locked


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
        locked.digest = crypto.digest(plaintext, hashing_secret())
        locked.key_prefix = crypto.display_prefix(plaintext)
        locked.key_suffix = crypto.display_suffix(plaintext)
        locked.rotated_on = now
        keycache.invalidate([locked.pk])
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
        audit_event_record(
            actor=actor,
            action=Action.API_KEY_ROTATED,
            target_type="api_key",
            target_id=locked.id,
            organization=locked.organization,
            user_public_id=locked.user_public_id,
            details={"grace_seconds": grace_seconds},
        )
        event_record(event_type="api_key.rotated", api_key=locked, actor=actor)
    return IssuedKey(api_key=locked, plaintext=plaintext)


def revocation_event_type(reason: str | None) -> str:
    """The webhook event of a revocation: ``api_key.leaked`` for a leak,
    ``api_key.idle_revoked`` for an idle key, else ``api_key.revoked``."""
    return {"leaked": "api_key.leaked", "idle": "api_key.idle_revoked"}.get(
        reason or "", "api_key.revoked"
    )


def api_key_revoke(
    *,
    api_key: ApiKey,
    actor: Actor,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> ApiKey:
    """Revoke ``api_key`` at once, both secrets if it is in a rotation grace period.

    ``reason`` (``"leaked"``…) and ``details`` (where it leaked…) go into the audit event;
    without them the event carries no details. Idempotent: revoking a revoked key changes
    nothing and records nothing.
    """
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.status == ApiKey.Status.REVOKED:
            return locked
        locked.status = ApiKey.Status.REVOKED
        locked.revoked_on = timezone.now()
        locked.previous_digest = None
        locked.previous_expires_at = None
        keycache.invalidate([locked.pk])
        locked.save(
            update_fields=["status", "revoked_on", "previous_digest", "previous_expires_at"]
        )
        audit_event_record(
            actor=actor,
            action=Action.API_KEY_REVOKED,
            target_type="api_key",
            target_id=locked.id,
            organization=locked.organization,
            user_public_id=locked.user_public_id,
            details={**(details or {}), **({"reason": reason} if reason else {})},
        )
        event_record(event_type=revocation_event_type(reason), api_key=locked, actor=actor)
    return locked


def revoke_owned_keys(
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
        keycache.invalidate(ids)
        ApiKey.objects.filter(pk__in=ids).update(
            status=ApiKey.Status.REVOKED,
            revoked_on=timezone.now(),
            previous_digest=None,
            previous_expires_at=None,
        )
        AuditEvent.objects.bulk_create(
            audit_event_unsaved(
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
        events_record(
            event_type=revocation_event_type(reason),
            api_keys=ApiKey.objects.filter(pk__in=ids).order_by("pk"),
            actor=actor,
        )
    return ids
