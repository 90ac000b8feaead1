"""Staff groups (Django's auth groups) in the admin: who may issue, rotate or revoke keys is
decided by them, so every change goes through a service and is audited with the admin as
actor, and nothing is written when a change is refused."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from apikeys import services
from apikeys.exceptions import GroupNameTaken
from apikeys.models import AuditEvent
from tests.factories import UserFactory
from tests.formtokens import FormTokenClient

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
SYSTEM = services.Actor.system()


def permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="apikeys", codename=codename)


def url(name: str, *args: object) -> str:
    return reverse(f"admin:auth_group_{name}", args=args)


def test_creating_a_group_records_its_name_and_permissions_once(admin_client, admin_user):
    issue, view = permission("add_apikey"), permission("view_apikey")

    response = admin_client.post(
        url("add"), {"name": "Key issuers", "permissions": [issue.pk, view.pk]}
    )

    assert response.status_code == HTTPStatus.FOUND
    group = Group.objects.get(name="Key issuers")
    assert set(group.permissions.all()) == {issue, view}
    [event] = AuditEvent.objects.filter(action__startswith="staff_group.")
    assert (event.action, event.target_id, event.actor_user) == (
        Action.STAFF_GROUP_CREATED,
        str(group.pk),
        admin_user,
    )
    assert event.details == {
        "name": "Key issuers",
        "permissions": ["apikeys.add_apikey", "apikeys.view_apikey"],
    }


def test_changing_permissions_records_the_new_set_and_a_no_op_records_nothing(admin_client):
    group = services.staff_group_create(
        name="Auditors", permissions=[permission("view_apikey")], actor=SYSTEM
    )
    change = permission("change_apikey")

    admin_client.post(url("change", group.pk), {"name": "Auditors", "permissions": [change.pk]})
    admin_client.post(url("change", group.pk), {"name": "Auditors", "permissions": [change.pk]})

    assert list(group.permissions.all()) == [change]
    updates = AuditEvent.objects.filter(action=Action.STAFF_GROUP_UPDATED)
    assert [e.details for e in updates] == [{"permissions": ["apikeys.change_apikey"]}]


def test_renaming_to_a_taken_name_is_refused_and_changes_nothing(admin_client):
    services.staff_group_create(name="Issuers", actor=SYSTEM)
    group = services.staff_group_create(
        name="Auditors", permissions=[permission("view_apikey")], actor=SYSTEM
    )

    response = admin_client.post(
        url("change", group.pk), {"name": "Issuers", "permissions": [permission("add_apikey").pk]}
    )

    assert response.status_code == HTTPStatus.OK
    assert "name" in response.context["adminform"].form.errors
    group.refresh_from_db()
    assert (group.name, list(group.permissions.all())) == ("Auditors", [permission("view_apikey")])
    assert not AuditEvent.objects.filter(action=Action.STAFF_GROUP_UPDATED).exists()


def test_the_service_refuses_a_taken_name_with_its_code():
    services.staff_group_create(name="Issuers", actor=SYSTEM)
    with pytest.raises(GroupNameTaken):
        services.staff_group_create(name="Issuers", actor=SYSTEM)
    assert Group.objects.filter(name="Issuers").count() == 1


def test_deleting_a_group_keeps_its_members_and_records_how_many_there_were(
    admin_client, admin_user
):
    group = services.staff_group_create(
        name="Issuers", permissions=[permission("add_apikey")], actor=SYSTEM
    )
    member = UserFactory(is_staff=True)
    member.groups.add(group)

    response = admin_client.post(url("delete", group.pk), {"post": "yes"})

    assert response.status_code == HTTPStatus.FOUND
    assert not Group.objects.filter(pk=group.pk).exists()
    member.refresh_from_db()
    assert not member.has_perm("apikeys.add_apikey")
    [event] = AuditEvent.objects.filter(action=Action.STAFF_GROUP_DELETED)
    assert (event.details, event.actor_user) == ({"name": "Issuers", "members": 1}, admin_user)


def test_bulk_delete_records_one_event_per_group(admin_client):
    groups = [services.staff_group_create(name=n, actor=SYSTEM) for n in ("One", "Two")]

    admin_client.post(
        url("changelist"),
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )

    assert not Group.objects.exists()
    deleted = AuditEvent.objects.filter(action=Action.STAFF_GROUP_DELETED)
    assert sorted(e.details["name"] for e in deleted) == ["One", "Two"]


def test_the_list_shows_permission_and_member_counts(admin_client):
    group = services.staff_group_create(
        name="Issuers",
        permissions=[permission("add_apikey"), permission("view_apikey")],
        actor=SYSTEM,
    )
    UserFactory(is_staff=True).groups.add(group)

    response = admin_client.get(url("changelist"))

    [row] = response.context["cl"].result_list
    assert (row.name, row.permission_total, row.member_total) == ("Issuers", 2, 1)


def test_staff_without_group_permissions_cannot_see_or_change_groups(db):
    group = services.staff_group_create(name="Issuers", actor=SYSTEM)
    person = UserFactory(is_staff=True)
    person.user_permissions.set([permission("view_apikey")])
    client = FormTokenClient()
    client.force_login(person)

    assert client.get(url("changelist")).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("add"), {"name": "Mine"}).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("delete", group.pk), {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert list(Group.objects.values_list("name", flat=True)) == ["Issuers"]
    assert not AuditEvent.objects.filter(actor_user=person).exists()
