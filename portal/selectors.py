"""Reads the portal's pages need, beyond ``ApiKey.objects.visible_to``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apikeys import services
from apikeys.models import ApiKey, Organization, SystemPermission


def organizations_readable_by(user: Any) -> QuerySet[Organization]:
    """Organizations where one of ``user``'s roles grants ``read:org:authentication``:
    those whose keys page the portal lists for them. One query, whatever their number."""
    if not getattr(user, "is_authenticated", False):
        return Organization.objects.none()
    return (
        Organization.objects.filter(
            memberships__user=user,
            memberships__roles__system_permissions__key=SystemPermission.READ_ORG_AUTHENTICATION,
        )
        .distinct()
        .order_by("name")
    )


def api_keys_for_list(*, user: Any, organization: Organization | None = None) -> QuerySet[ApiKey]:
    """The keys a list page shows: ``user``'s own, or ``organization``'s, always through
    ``visible_to`` so that a list can never show a key its reader may not see.

    Everything a row shows is on the key row or its API (scope keys and owner are copied
    onto the key at issue time), so a page costs the same number of queries for 10 keys or
    10,000.
    """
    keys = ApiKey.objects.visible_to(user).select_related("api")
    if organization is not None:
        keys = keys.filter(organization=organization)
    else:
        keys = keys.filter(user=user)
    return keys.order_by("-id")


def key_policy_notes(*, user: Any, organization: Organization | None = None) -> list[str]:
    """The key policy of the owner a create page is for, in words, before anyone runs into
    it: ``Keys of Acme expire after at most 90 days.``, ``Acme may have at most 10 active
    keys (7 now).``… Empty when no limit applies."""
    if organization is not None:
        policy = services.key_policy_for_organization(organization)
        keys_of, who, has = f"Keys of {organization.name}", organization.name, "has"
    else:
        policy = services.key_policy_for_user(user)
        keys_of, who, has = "Your keys", "You", "have"
    notes = []
    if policy.max_lifetime_days is not None:
        notes.append(f"{keys_of} expire after at most {_days(policy.max_lifetime_days)}.")
    if policy.max_active_keys is not None:
        count = services.active_key_count(organization=organization, user=user)
        may = f"{who} may have at most {_plural(policy.max_active_keys, 'active key')}"
        notes.append(f"{may} ({count} now).")
        if count >= policy.max_active_keys:
            notes.append(f"{who} {has} reached that limit: revoke a key to create another.")
    if policy.max_idle_days is not None:
        notes.append(
            f"{keys_of} not verified for {_days(policy.max_idle_days)} are revoked automatically."
        )
    if notes and organization is None and user.memberships.count() > 1:
        notes.append("These are the strictest limits of your organizations' policies.")
    return notes


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _days(count: int) -> str:
    return _plural(count, "day")
