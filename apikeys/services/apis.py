"""APIs (name + unique audience) and their scopes. Neither is deleted while active keys
use it."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apikeys import exceptions as errors
from apikeys.models import SCOPE_KEY_PATTERN, Api, ApiKey, Scope
from apikeys.services._shared import Action, atomic_or_conflict, check_pattern, check_text
from apikeys.services.audit import Actor, audit_event_record


def api_create(*, name: str, audience: str, actor: Actor) -> Api:
    name = check_text(name, field="name", max_length=64)
    audience = check_text(audience, field="audience", max_length=64)
    with atomic_or_conflict(errors.AudienceTaken(field="audience")):
        api = Api.objects.create(name=name, audience=audience)
        audit_event_record(
            actor=actor,
            action=Action.API_CREATED,
            target_type="api",
            target_id=api.id,
            details={"name": name, "audience": audience},
        )
    return api


def _has_active_keys(keys: QuerySet[ApiKey]) -> bool:
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
        audit_event_record(
            actor=actor,
            action=Action.API_DELETED,
            target_type="api",
            target_id=locked.id,
            details={"name": locked.name, "audience": locked.audience},
        )
        locked.delete()


def scope_create(*, api: Api, key: str, description: str = "", actor: Actor) -> Scope:
    key = check_pattern(
        key,
        field="key",
        pattern=SCOPE_KEY_PATTERN,
        what="a scope key of 1 to 64 characters without spaces",
    )
    description = check_text(description, field="description", max_length=255, min_length=0)
    with atomic_or_conflict(errors.ScopeKeyTaken(field="key")):
        scope = Scope.objects.create(api=api, key=key, description=description)
        audit_event_record(
            actor=actor,
            action=Action.SCOPE_CREATED,
            target_type="scope",
            target_id=scope.id,
            details={"api_id": api.id, "key": key},
        )
    return scope


def scope_update(*, scope: Scope, description: str, actor: Actor) -> Scope:
    """Change a scope's description; its key never changes (keys refer to it by key)."""
    scope.description = check_text(description, field="description", max_length=255, min_length=0)
    with transaction.atomic():
        scope.save(update_fields=["description"])
        audit_event_record(
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
        audit_event_record(
            actor=actor,
            action=Action.SCOPE_DELETED,
            target_type="scope",
            target_id=locked.id,
            details={"api_id": locked.api_id, "key": locked.key},
        )
        locked.delete()
