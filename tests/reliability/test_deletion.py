"""Deleting never destroys keys or audit history.

The foreign keys from ``ApiKey`` to its owner (``Organization`` / ``User``) are
``PROTECT``: the database itself refuses to delete an owner that still has keys, whatever
the door (ORM, admin, service), so no cascade can take keys with it. The services say why
(a coded error) and change nothing. An owner without keys can go, and every audit event
that mentions it stays, with its public code and the actor's name kept as text. Deleting
an API, a scope or an M2M application keeps the keys they touched readable.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import ProtectedError

from apikeys import exceptions, services
from apikeys.models import ApiKey, AuditEvent, Organization
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()


def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every key and every audit event, as rows."""
    keys = list(ApiKey.objects.order_by("pk").values_list())
    events = list(AuditEvent.objects.order_by("pk").values_list())
    return keys, events


@pytest.mark.parametrize("owner_kind", ["organization", "user"])
def test_the_database_refuses_to_delete_an_owner_that_has_keys(
    issued_key: services.IssuedKey, user_key: services.IssuedKey, owner_kind: str
) -> None:
    owner = (
        issued_key.api_key.organization if owner_kind == "organization" else user_key.api_key.user
    )
    services.api_key_revoke(api_key=issued_key.api_key, actor=SYSTEM)  # revoked keys too
    before = snapshot()
    with pytest.raises(ProtectedError):
        owner.delete()
    assert snapshot() == before
    assert type(owner).objects.filter(pk=owner.pk).exists()


def test_the_services_refuse_to_delete_an_owner_that_has_keys_with_a_code(
    issued_key: services.IssuedKey, user_key: services.IssuedKey
) -> None:
    before = snapshot()
    with pytest.raises(exceptions.ApiKeysError) as refused_org:
        services.organization_delete(organization=issued_key.api_key.organization, actor=SYSTEM)
    with pytest.raises(exceptions.ApiKeysError) as refused_user:
        services.user_delete(user=user_key.api_key.user, actor=SYSTEM)
    assert refused_org.value.code == "ORGANIZATION_HAS_API_KEYS"
    assert refused_user.value.code == "USER_HAS_API_KEYS"
    assert snapshot() == before
    # The keys still verify: nothing about them changed.
    assert services.api_key_verify(key=issued_key.plaintext).is_valid
    assert services.api_key_verify(key=user_key.plaintext).is_valid


def test_deleting_an_owner_without_keys_keeps_every_audit_event_that_mentions_it(
    api: Any, issued_key: services.IssuedKey
) -> None:
    person = UserFactory(first_name="Grace", last_name="Hopper")
    organization = services.organization_create(name="Short-lived", actor=SYSTEM)
    services.membership_add(organization=organization, user=person, actor=SYSTEM)
    # The person acted: they issued a key for another organization (which keeps it).
    made = services.api_key_issue(
        name="Made by Grace",
        api=api,
        organization=issued_key.api_key.organization,
        actor=services.Actor(user=person),
    ).api_key
    events_before = list(
        AuditEvent.objects.order_by("pk").values_list("pk", "action", "org_code", "actor_label")
    )

    services.organization_delete(organization=organization, actor=SYSTEM)
    services.user_delete(user=person, actor=SYSTEM)

    events_after = list(
        AuditEvent.objects.order_by("pk").values_list("pk", "action", "org_code", "actor_label")
    )
    assert events_after[: len(events_before)] == events_before  # nothing lost, nothing changed
    assert [e[1] for e in events_after[len(events_before) :]] == [
        "organization.deleted",
        "user.deleted",
    ]
    assert (
        AuditEvent.objects.filter(org_code=organization.code).count() == 3
    )  # created, member, deleted
    issued_by_grace = AuditEvent.objects.get(target_id=made.id, action="api_key.issued")
    assert issued_by_grace.actor_label == "Grace Hopper" and issued_by_grace.actor_user is None
    made.refresh_from_db()
    assert made.created_by == "Grace Hopper" and made.status == ApiKey.Status.ACTIVE
    assert not Organization.objects.filter(pk=organization.pk).exists()


def test_deleting_an_api_or_scope_keeps_the_revoked_keys_that_used_them_readable(
    api: Any, read_users: Any, organization: Any
) -> None:
    key = services.api_key_issue(
        name="Old", api=api, scopes=[read_users], organization=organization, actor=SYSTEM
    )
    services.api_key_revoke(api_key=key.api_key, actor=SYSTEM)
    api_id = api.id
    services.scope_delete(scope=read_users, actor=SYSTEM)
    services.api_delete(api=api, actor=SYSTEM)
    kept = ApiKey.objects.get(pk=key.api_key.pk)
    assert (kept.api_public_id, kept.scope_list, kept.status) == (api_id, ["read:users"], "revoked")
    assert AuditEvent.objects.filter(target_id=kept.id).count() == 2  # issued, revoked


def test_deleting_an_m2m_application_keeps_the_keys_it_made_and_its_history(
    api: Any, organization: Any
) -> None:
    application = services.m2m_application_create(
        name="Old job", scopes=["create:api_keys"], actor=SYSTEM
    ).application
    actor = services.Actor(application=application)
    key = services.api_key_issue(
        name="From the job", api=api, organization=organization, actor=actor
    ).api_key
    services.m2m_application_delete(application=application, actor=SYSTEM)
    key.refresh_from_db()
    assert key.created_by == "Old job" and key.created_by_application is None
    issued = AuditEvent.objects.get(target_id=key.id)
    assert issued.actor_label == "Old job" and issued.actor_type == "application"


@pytest.mark.parametrize("how", ["instance", "queryset", "update"])
def test_the_audit_trail_is_append_only(issued_key: services.IssuedKey, how: str) -> None:
    event = AuditEvent.objects.first()
    with pytest.raises(TypeError):
        if how == "instance":
            event.delete()
        elif how == "queryset":
            AuditEvent.objects.all().delete()
        else:
            AuditEvent.objects.update(action="tampered")
    assert AuditEvent.objects.filter(action="tampered").count() == 0
