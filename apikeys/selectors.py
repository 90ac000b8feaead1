"""Reads that cross relations: who may see what, and answers the services need."""

from __future__ import annotations

from typing import Any

from apikeys.models import Membership, Organization, SystemPermission


def organization_permissions(*, user: Any, organization: Organization) -> set[str]:
    """The system permission keys ``user``'s roles grant in ``organization``."""
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(
        Membership.objects.filter(user=user, organization=organization).values_list(
            "roles__system_permissions__key", flat=True
        )
    ) - {None}


def can_read_org_keys(*, user: Any, organization: Organization) -> bool:
    """Seeing an organization's keys needs ``read:org:authentication``."""
    return SystemPermission.READ_ORG_AUTHENTICATION in organization_permissions(
        user=user, organization=organization
    )


def can_write_org_keys(*, user: Any, organization: Organization) -> bool:
    """Creating, rotating and revoking them needs ``write:org:authentication`` as well as
    ``read`` (every write acts on keys the member must be able to see)."""
    perms = organization_permissions(user=user, organization=organization)
    return {
        SystemPermission.READ_ORG_AUTHENTICATION,
        SystemPermission.WRITE_ORG_AUTHENTICATION,
    } <= perms
