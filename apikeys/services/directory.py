"""The directory: organizations, users, roles and memberships.

Deleting an organization or a user never deletes their keys: the active ones are revoked
first (each audited), and all stay readable under the owner's code or id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from apikeys import exceptions as errors
from apikeys import keycache
from apikeys.models import (
    ORG_CODE_PATTERN,
    ROLE_KEY_PATTERN,
    ApiKey,
    AuditEvent,
    Membership,
    Organization,
    Role,
    SystemPermission,
    new_org_code,
)
from apikeys.services._shared import (
    Action,
    User,
    atomic_or_conflict,
    check_email,
    check_pattern,
    check_text,
    group_label,
    hold_owner,
    permission_label,
    replace_related,
)
from apikeys.services.audit import Actor, audit_event_record
from apikeys.services.keys import revoke_owned_keys


def organization_create(*, name: str, code: str | None = None, actor: Actor) -> Organization:
    """Create an organization with ``code``, or with a new random ``org_…`` code.

    A code given is refused when an organization has it, or had it (a deleted one's keys and
    audit events keep its code). A random code is drawn again in either case, so a caller
    that gave none never hears of a clash.
    """
    name = check_text(name, field="name", max_length=128)
    if code is not None:
        code = check_pattern(
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
        audit_event_record(
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
    organization.name = check_text(name, field="name", max_length=128)
    with transaction.atomic():
        organization.save(update_fields=["name"])
        audit_event_record(
            actor=actor,
            action=Action.ORGANIZATION_UPDATED,
            target_type="organization",
            target_id=organization.code,
            organization=organization,
            details={"name": organization.name},
        )
    return organization


def organization_delete(*, organization: Organization, actor: Actor) -> None:
    """Delete ``organization`` with its memberships and portal links. Its API keys are never
    deleted: the active ones are revoked first (each audited), and all stay readable with
    the organization's code, which no new organization can take."""
    with transaction.atomic():
        # Locking the row also holds back a key issued or a member added at the same moment
        # (hold_owner waits on the row, then refuses): nothing slips in after the revoke.
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        revoked = revoke_owned_keys(
            ApiKey.objects.filter(organization=locked),
            organization=locked,
            actor=actor,
            reason="organization deleted",
        )
        audit_event_record(
            actor=actor,
            action=Action.ORGANIZATION_DELETED,
            target_type="organization",
            target_id=locked.code,
            organization=locked,
            details={"name": locked.name, "revoked_api_keys": len(revoked)},
        )
        locked.delete()


def user_create(
    *,
    email: str,
    given_name: str = "",
    family_name: str = "",
    password: str | None = None,
    actor: Actor,
) -> Any:
    """Create a user; the email is also their sign-in name. No password: portal links only."""
    email = check_email(email)
    given_name = check_text(given_name, field="given_name", max_length=150, min_length=0)
    family_name = check_text(family_name, field="family_name", max_length=150, min_length=0)
    if User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email)).exists():
        raise errors.EmailTaken(field="email")
    with atomic_or_conflict(errors.EmailTaken(field="email")):
        user = User(username=email, email=email, first_name=given_name, last_name=family_name)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        audit_event_record(
            actor=actor,
            action=Action.USER_CREATED,
            target_type="user",
            target_id=user.public_id,
            user_public_id=user.public_id,
            details={"email": email},
        )
    return user


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
    with atomic_or_conflict(errors.EmailTaken(field="email")):
        locked = User.objects.select_for_update().get(pk=user.pk)
        if email is not None:
            email = check_email(email)
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
                value = check_text(value, field=attr, max_length=150, min_length=0)
                if value != getattr(locked, attr):
                    setattr(locked, attr, value)
                    changed[attr] = value
        flags = {"is_active": is_active, "is_staff": is_staff, "is_superuser": is_superuser}
        for attr, flag in flags.items():
            if flag is not None and bool(flag) != getattr(locked, attr):
                setattr(locked, attr, bool(flag))
                changed[attr] = bool(flag)
        if changed:
            fields = list(changed) + (["username"] if "email" in changed else [])
            locked.save(update_fields=fields)
        if "is_active" in changed:
            # Workers that verify this user's keys from their cache know whether the user is
            # active (the in-process authentication refuses an inactive user's key): they
            # read it again, at once, as after a revocation.
            keycache.invalidate(
                list(
                    ApiKey.objects.filter(user=locked, status=ApiKey.Status.ACTIVE).values_list(
                        "id", flat=True
                    )
                )
            )
        # Admin permissions are security-relevant: record the new set, by name.
        for attr, wanted, label in [
            ("groups", groups, group_label),
            ("user_permissions", user_permissions, permission_label),
        ]:
            if wanted is not None:
                new_set = replace_related(getattr(locked, attr), wanted, label)
                if new_set is not None:
                    changed[attr] = new_set
        if changed:
            audit_event_record(
                actor=actor,
                action=Action.USER_UPDATED,
                target_type="user",
                target_id=locked.public_id,
                user_public_id=locked.public_id,
                details=changed,
            )
    return locked


def user_delete(*, user: Any, actor: Actor) -> None:
    """Delete ``user`` with their memberships and portal links. Their API keys are never
    deleted: the active ones are revoked first (each audited), and all stay readable with
    the user's id, as does every audit event that names them."""
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        revoked = revoke_owned_keys(
            ApiKey.objects.filter(user=locked),
            user_public_id=locked.public_id,
            actor=actor,
            reason="user deleted",
        )
        audit_event_record(
            actor=actor,
            action=Action.USER_DELETED,
            target_type="user",
            target_id=locked.public_id,
            user_public_id=locked.public_id,
            details={"email": locked.email, "revoked_api_keys": len(revoked)},
        )
        locked.delete()


def role_create(*, key: str, name: str, description: str = "", actor: Actor) -> Role:
    key = check_pattern(
        key,
        field="key",
        pattern=ROLE_KEY_PATTERN,
        what="lowercase letters, digits and _:.- (1 to 64)",
    )
    name = check_text(name, field="name", max_length=128)
    description = check_text(description, field="description", max_length=255, min_length=0)
    with atomic_or_conflict(errors.RoleKeyTaken(field="key")):
        role = Role.objects.create(key=key, name=name, description=description)
        audit_event_record(
            actor=actor,
            action=Action.ROLE_CREATED,
            target_type="role",
            target_id=role.id,
            details={"key": key, "name": name},
        )
    return role


def role_update(*, role: Role, name: str, description: str = "", actor: Actor) -> Role:
    """Change a role's name and description. Its key never changes: callers refer to it."""
    name = check_text(name, field="name", max_length=128)
    description = check_text(description, field="description", max_length=255, min_length=0)
    with transaction.atomic():
        locked = Role.objects.select_for_update().get(pk=role.pk)
        if (locked.name, locked.description) == (name, description):
            return locked
        locked.name, locked.description = name, description
        locked.save(update_fields=["name", "description"])
        audit_event_record(
            actor=actor,
            action=Action.ROLE_UPDATED,
            target_type="role",
            target_id=locked.id,
            details={"name": name, "description": description},
        )
    return locked


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
        audit_event_record(
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
        hold_owner(organization)
        hold_owner(user)
        membership, created = Membership.objects.get_or_create(organization=organization, user=user)
        membership.roles.set(roles)
        audit_event_record(
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
            audit_event_record(
                actor=actor,
                action=Action.MEMBERSHIP_REMOVED,
                target_type="membership",
                target_id=user.public_id,
                organization=organization,
                user_public_id=user.public_id,
            )
