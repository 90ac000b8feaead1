"""Staff groups: Django's auth groups, bundles of admin permissions for platform staff.

Who may issue, rotate or revoke keys in the admin is decided here, so every change is
audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from apikeys import exceptions as errors
from apikeys.services._shared import (
    Action,
    atomic_or_conflict,
    check_text,
    permission_label,
    replace_related,
)
from apikeys.services.audit import Actor, audit_event_record


def staff_group_create(*, name: str, permissions: Iterable[Any] = (), actor: Actor) -> Any:
    name = check_text(name, field="name", max_length=150)
    chosen = list(permissions)
    with atomic_or_conflict(errors.GroupNameTaken(field="name")):
        group = Group.objects.create(name=name)
        group.permissions.set(chosen)
        audit_event_record(
            actor=actor,
            action=Action.STAFF_GROUP_CREATED,
            target_type="staff_group",
            target_id=str(group.pk),
            details={"name": name, "permissions": sorted(permission_label(p) for p in chosen)},
        )
    return group


def staff_group_update(
    *, group: Any, name: str | None = None, permissions: Iterable[Any] | None = None, actor: Actor
) -> Any:
    """Rename a staff group and/or replace its permissions (``None`` leaves a value as is):
    one ``staff_group.updated`` event naming what changed, or none when nothing did."""
    name = None if name is None else check_text(name, field="name", max_length=150)
    changed: dict[str, Any] = {}
    with atomic_or_conflict(errors.GroupNameTaken(field="name")):
        locked = Group.objects.select_for_update().get(pk=group.pk)
        if name is not None and name != locked.name:
            locked.name = name
            locked.save(update_fields=["name"])
            changed["name"] = name
        if permissions is not None:
            new_set = replace_related(locked.permissions, permissions, permission_label)
            if new_set is not None:
                changed["permissions"] = new_set
        if changed:
            audit_event_record(
                actor=actor,
                action=Action.STAFF_GROUP_UPDATED,
                target_type="staff_group",
                target_id=str(locked.pk),
                details=changed,
            )
    return locked


def staff_group_delete(*, group: Any, actor: Actor) -> None:
    """Delete a staff group: its members keep their accounts and lose what it granted."""
    with transaction.atomic():
        locked = Group.objects.select_for_update().get(pk=group.pk)
        audit_event_record(
            actor=actor,
            action=Action.STAFF_GROUP_DELETED,
            target_type="staff_group",
            target_id=str(locked.pk),
            details={"name": locked.name, "members": locked.user_set.count()},
        )
        locked.delete()
