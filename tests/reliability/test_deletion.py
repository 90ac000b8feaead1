"""Deleting never destroys keys or audit history.

Deleting an organization or a user revokes its active keys first (each revocation audited,
giving the reason), then deletes the owner: its keys stay, revoked, under the owner's public
code, which no new organization can take. The database itself refuses an active key
without an owner (``apikeys_apikey_ownerless_is_revoked``), whatever the door, so no
cascade can leave a working key behind. Every audit event that mentions the owner stays.
Deleting an API, a scope or an M2M application keeps the keys they touched readable.
"""

from __future__ import annotations

import json
import subprocess
from http import HTTPStatus
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from apikeys import exceptions, services
from apikeys.models import ApiKey, AuditEvent, Organization
from tests.factories import OrganizationFactory, UserFactory
from tests.servers import PYTHON, ROOT, Cluster, production_env

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()


def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every key and every audit event, as rows."""
    keys = list(ApiKey.objects.order_by("pk").values_list())
    events = list(AuditEvent.objects.order_by("pk").values_list())
    return keys, events


def history() -> list[tuple[Any, ...]]:
    """Every audit event as recorded: all but the links to rows that may go (an event's
    organization, acting user or application), which the codes and labels stand for."""
    links = {"organization", "actor_user", "actor_application"}
    fields = [f.attname for f in AuditEvent._meta.concrete_fields if f.name not in links]
    return list(AuditEvent.objects.order_by("pk").values_list(*fields))


def make_owner(kind: str) -> tuple[Any, dict[str, Any]]:
    owner = OrganizationFactory() if kind == "organization" else UserFactory()
    return owner, {kind: owner}


@pytest.mark.parametrize("kind", ["organization", "user"])
def test_deleting_an_owner_revokes_its_keys_and_keeps_them(api: Any, kind: str) -> None:
    owner, owned = make_owner(kind)
    active = services.api_key_issue(name="Active", api=api, actor=SYSTEM, **owned)
    rotating = services.api_key_issue(name="Rotating", api=api, actor=SYSTEM, **owned)
    old_secret = rotating.plaintext
    rotating = services.api_key_rotate(api_key=rotating.api_key, grace_seconds=3600, actor=SYSTEM)
    revoked = services.api_key_issue(name="Revoked", api=api, actor=SYSTEM, **owned)
    services.api_key_revoke(api_key=revoked.api_key, actor=SYSTEM)
    revoked_on = ApiKey.objects.get(pk=revoked.api_key.pk).revoked_on
    _other_owner, other_owned = make_owner(kind)
    bystander = services.api_key_issue(name="Someone else's", api=api, actor=SYSTEM, **other_owned)
    code = owner.code if kind == "organization" else owner.public_id
    events_before = history()
    assert services.api_key_verify(key=old_secret).is_valid  # in its grace period

    delete = services.organization_delete if kind == "organization" else services.user_delete
    delete(**{kind: owner}, actor=SYSTEM)

    assert not type(owner).objects.filter(pk=owner.pk).exists()
    keys = {
        k.pk: k
        for k in ApiKey.objects.filter(
            pk__in=[active.api_key.pk, rotating.api_key.pk, revoked.api_key.pk]
        )
    }
    assert len(keys) == 3  # nothing deleted
    for key in keys.values():
        assert key.status == "revoked" and key.owner_deleted and key.owner_code == code
        assert key.type == kind and key.previous_digest is None
    assert keys[revoked.api_key.pk].revoked_on == revoked_on  # already revoked: untouched
    for plaintext in (active.plaintext, rotating.plaintext):
        assert services.api_key_verify(key=plaintext).code == "API_KEY_REVOKED"
    assert services.api_key_verify(key=old_secret).code == "API_KEY_INVALID"
    assert services.api_key_verify(key=bystander.plaintext).is_valid
    assert ApiKey.objects.get(pk=bystander.api_key.pk).owner_code != code

    # Nothing in the history changed; one revocation per key that was active, then the
    # deletion, which counts them.
    assert history()[: len(events_before)] == events_before
    added = list(AuditEvent.objects.order_by("pk")[len(events_before) :])
    revocations, [deletion] = added[:-1], added[-1:]
    assert sorted(e.target_id for e in revocations) == sorted(
        [active.api_key.pk, rotating.api_key.pk]
    )
    for event in revocations:
        assert event.action == "api_key.revoked" and event.details == {"reason": f"{kind} deleted"}
        assert (event.org_code or event.user_public_id) == code
    assert deletion.action == f"{kind}.deleted" and deletion.details["revoked_api_keys"] == 2
    assert AuditEvent.objects.filter(target_id=active.api_key.pk).count() == 2  # issued, revoked


@pytest.mark.parametrize("kind", ["organization", "user"])
def test_the_database_refuses_an_active_key_without_an_owner(api: Any, kind: str) -> None:
    owner, owned = make_owner(kind)
    key = services.api_key_issue(name="Active", api=api, actor=SYSTEM, **owned).api_key
    before = snapshot()
    # Past the services (a shell, a script): the ORM's delete would unlink the active key.
    with pytest.raises(IntegrityError), transaction.atomic():
        owner.delete()
    assert snapshot() == before
    assert type(owner).objects.filter(pk=owner.pk).exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(organization=None, user=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(org_code="", user_public_id="")  # no owner code
    # A revoked key may outlive its owner; it keeps the owner's code.
    services.api_key_revoke(api_key=key, actor=SYSTEM)
    owner.delete()
    key.refresh_from_db()
    assert key.owner_deleted and key.status == "revoked" and key.owner_code


def test_a_deleted_organizations_code_names_no_new_organization(
    issued_key: services.IssuedKey, make_client: Any
) -> None:
    organization = issued_key.api_key.organization
    code = organization.code
    services.organization_delete(organization=organization, actor=SYSTEM)
    with pytest.raises(exceptions.OrganizationCodeTaken) as refused:
        services.organization_create(name="Impostor", code=code, actor=SYSTEM)
    assert "deleted organization" in refused.value.message
    response = make_client(["create:organizations"]).post(
        "/api/v1/organization", {"name": "Impostor", "code": code}, format="json"
    )
    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["errors"][0]["code"] == "ORGANIZATION_CODE_TAKEN"
    assert not Organization.objects.filter(code=code).exists()
    # A code no organization ever had is still free.
    services.organization_create(name="Fresh", code="org_neverused1", actor=SYSTEM)


def test_a_random_code_that_an_organization_has_or_had_is_drawn_again(
    issued_key: services.IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that gives no code never hears of a clash: a drawn code that a live
    organization has, or a deleted one had, is replaced by another draw."""
    deleted = issued_key.api_key.organization
    deleted_code = deleted.code
    services.organization_delete(organization=deleted, actor=SYSTEM)
    live = services.organization_create(name="Live", actor=SYSTEM)
    draws = iter([deleted_code, live.code, "org_fresh0draw"])
    monkeypatch.setattr(services.directory, "new_org_code", lambda: next(draws))

    created = services.organization_create(name="Newcomer", actor=SYSTEM)

    assert created.code == "org_fresh0draw"
    assert not ApiKey.objects.filter(org_code=deleted_code, organization__isnull=False).exists()
    monkeypatch.setattr(services.directory, "new_org_code", lambda: live.code)
    with pytest.raises(RuntimeError, match="No unused organization code"):
        services.organization_create(name="Unlucky", actor=SYSTEM)
    assert not Organization.objects.filter(name="Unlucky").exists()


def test_the_keys_of_a_deleted_owner_stay_readable_over_the_api(
    issued_key: services.IssuedKey, make_client: Any
) -> None:
    key = issued_key.api_key
    services.organization_delete(organization=key.organization, actor=SYSTEM)
    client = make_client(["read:api_keys", "verify:api_keys"])
    got = client.get(f"/api/v1/api_keys/{key.id}").json()["api_key"]
    assert (got["status"], got["org_code"], got["type"]) == (
        "revoked",
        key.org_code,
        "organization",
    )
    listed = client.get("/api/v1/api_keys", {"org_code": key.org_code}).json()["api_keys"]
    assert [k["id"] for k in listed] == [key.id]
    listed = client.get("/api/v1/api_keys", {"key_type": "organization"}).json()["api_keys"]
    assert [k["id"] for k in listed] == [key.id]
    verified = client.post(
        "/api/v1/api_keys/verify", {"api_key": issued_key.plaintext}, format="json"
    ).json()
    assert (verified["is_valid"], verified["code"]) == (False, "API_KEY_REVOKED")


@pytest.mark.parametrize("kind", ["organization", "user"])
def test_issuing_for_an_owner_deleted_meanwhile_is_refused_with_a_code(api: Any, kind: str) -> None:
    owner, _owned = make_owner(kind)
    stale = type(owner).objects.get(pk=owner.pk)  # looked up by a request, before the delete
    delete = services.organization_delete if kind == "organization" else services.user_delete
    delete(**{kind: owner}, actor=SYSTEM)
    before = snapshot()
    with pytest.raises(exceptions.NotFound) as refused:
        services.api_key_issue(name="Late", api=api, actor=SYSTEM, **{kind: stale})
    assert refused.value.code == f"{kind.upper()}_NOT_FOUND"
    assert snapshot() == before


@pytest.mark.servers
@pytest.mark.xdist_group("servers")
def test_a_delete_and_an_issue_at_once_never_leave_an_active_key_on_postgresql(
    cluster: Cluster,
) -> None:
    """Two real connections to a throwaway PostgreSQL (tests/reliability/owner_race.py)."""
    result = subprocess.run(
        [PYTHON, "-m", "tests.reliability.owner_race"],
        env=production_env(DATABASE_URL=cluster.fresh_database()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    observed = json.loads(result.stdout.strip().splitlines()[-1])
    assert observed["delete_first"] == {
        "delete": "ok",
        "issue_waited": True,
        "issue": "ORGANIZATION_NOT_FOUND",
        "organization_exists": False,
        "keys": 1,
        "active_keys": 0,
    }
    assert observed["issue_first"] == {
        "issue": "ok",
        "delete_waited": True,
        "delete": "ok",
        "key_status": "revoked",
        "key_org_code_kept": True,
        "revoked_events": 1,
    }
    assert observed["member_during_delete"] == {
        "delete": "ok",
        "add_waited": True,
        "add": "ORGANIZATION_NOT_FOUND",
        "memberships": 0,
    }


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
