"""Actors and audit events: every change the services make records who made it.

An ``AuditEvent`` is written in the same transaction as the change it describes, so the
two land together or not at all. Other apps (the portal) record theirs with
:func:`audit_event_record` inside their own service's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apikeys.models import AuditEvent, Organization
from apikeys.services._shared import clean_ip


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a person, an M2M application, or the system itself.

    ``name`` labels a system actor that is someone outside (``"GitHub secret scanning"``);
    without it a system actor is ``"system"``.
    """

    user: Any = None
    application: Any = None
    ip: str | None = None
    name: str | None = None

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
            return str(self.user.display_name)
        return self.name or "system"


def audit_event_unsaved(
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    organization: Organization | None = None,
    user_public_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An unsaved event (:func:`audit_event_record` saves one; bulk writers save many at
    once). Every ``AuditEvent`` the services write is made here."""
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
        ip=clean_ip(actor.ip),
        details=details or {},
    )


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
    """Record one ``AuditEvent``: every service calls it inside the ``transaction.atomic`` of
    its change, so the change and its audit land together or not at all. Other apps' services
    (the portal's links and self-serve settings) call it the same way."""
    event = audit_event_unsaved(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        organization=organization,
        user_public_id=user_public_id,
        details=details,
    )
    event.save()
    return event
