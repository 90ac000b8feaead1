"""Helpers shared by the portal's unit, permission and browser tests.

Keys are issued through the real service; roles get their system permissions from the
real ``SystemPermission`` rows (created here if a transactional test flushed the ones the
migration made).
"""

from __future__ import annotations

from typing import Any

from apikeys import services
from apikeys.models import Api, ApiKey, Organization, SystemPermission
from tests.factories import MembershipFactory, RoleFactory, UserFactory
from tests.formtokens import grant_form_token  # noqa: F401  (re-exported for the portal tests)

PASSWORD = "correct-horse-battery-42"

READ = SystemPermission.READ_ORG_AUTHENTICATION
WRITE = SystemPermission.WRITE_ORG_AUTHENTICATION

# The three levels of the permission matrix: a role that grants nothing, read, read+write.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {"none": (), "read": (READ,), "write": (READ, WRITE)}


def role_with(*permission_keys: str) -> Any:
    role = RoleFactory()
    role.system_permissions.set(
        [SystemPermission.objects.get_or_create(key=key)[0] for key in permission_keys]
    )
    return role


def member_of(organization: Organization, level: str, user: Any = None, **user_fields: Any) -> Any:
    """A user who is a member of ``organization`` with a role of ``level``
    (``none`` / ``read`` / ``write``). Pass ``password=PASSWORD`` for one who signs in with
    a password (hashing it with Argon2 is deliberately slow, so only where needed)."""
    if user is None:
        user = UserFactory(**user_fields)
    MembershipFactory(
        organization=organization, user=user, roles=[role_with(*ROLE_PERMISSIONS[level])]
    )
    return user


def issue(
    *, api: Api, name: str = "Backend", scopes: tuple[str, ...] = (), **owner: Any
) -> services.IssuedKey:
    return services.api_key_issue(
        name=name, api=api, scopes=list(scopes), actor=services.Actor.system(), **owner
    )


def key_state(api_key: ApiKey) -> tuple[Any, ...]:
    """What a refused action must leave untouched."""
    row = ApiKey.objects.get(pk=api_key.pk)
    return (row.digest, row.status, row.previous_digest, row.rotated_on, row.revoked_on)
