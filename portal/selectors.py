"""Reads the portal's pages need, beyond ``ApiKey.objects.visible_to``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
