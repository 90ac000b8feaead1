"""Organizations, users, memberships and roles in the admin: what their pages show, and that
every change goes through a service and is audited with the admin as actor."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from apikeys import services
from apikeys.models import ApiKey, AuditEvent, Membership, Organization, Role, SystemPermission
from tests.admin.helpers import admin_url
from tests.factories import MembershipFactory, OrganizationFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
Action = AuditEvent.Action


def inline_management(prefix: str, *, total: int, initial: int) -> dict[str, Any]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def assert_by_admin(event: AuditEvent, admin_user: Any) -> None:
    assert (event.actor_type, event.actor_user, event.actor_label) == (
        "user",
        admin_user,
        admin_user.display_name,
    )


# --------------------------------------------------------------------------- organizations


def test_organizations_are_listed_searched_and_created_through_the_service(
    admin_client, admin_user
):
    OrganizationFactory(name="Globex", code="org_globex")
    OrganizationFactory(name="Initech")
    found = admin_client.get(admin_url("organization_changelist"), {"q": "org_globex"})
    assert [o.name for o in found.context["cl"].result_list] == ["Globex"]

    response = admin_client.post(
        admin_url("organization_add"),
        {
            "name": "Acme",
            "code": "org_acme",
            **inline_management("memberships", total=0, initial=0),
        },
    )

    assert response.status_code == HTTPStatus.FOUND, response.context and response.context["errors"]
    organization = Organization.objects.get(code="org_acme")
    [event] = events(Action.ORGANIZATION_CREATED)
    assert event.target_id == "org_acme" and event.org_code == "org_acme"
    assert_by_admin(event, admin_user)
    assert organization.name == "Acme"


def test_a_bad_or_taken_organization_code_is_refused(admin_client):
    OrganizationFactory(code="org_taken")
    for code in ("org_taken", "ORG-BAD"):
        response = admin_client.post(
            admin_url("organization_add"),
            {"name": "Acme", "code": code, **inline_management("memberships", total=0, initial=0)},
        )
        assert response.status_code == HTTPStatus.OK
        assert "code" in response.context["adminform"].form.errors
    assert not events(Action.ORGANIZATION_CREATED)


def test_the_organization_page_shows_members_with_roles_and_keys(
    admin_client, issued_key, organization
):
    role = RoleFactory(name="Key administrator")
    member = MembershipFactory(organization=organization, roles=[role])

    page = admin_client.get(admin_url("organization_change", organization.pk))

    html = page.content.decode()
    assert page.status_code == HTTPStatus.OK
    assert member.user.email in html
    assert re.search(rf'name="memberships-0-roles" value="{role.pk}"[^>]*checked', html)
    assert issued_key.api_key.name in html and issued_key.api_key.key_prefix in html
    assert f"?owner={organization.code}" in html  # "All 1 key in the API key list"


def test_members_are_added_changed_and_removed_through_the_services(
    admin_client, admin_user, organization
):
    role, other_role = RoleFactory(), RoleFactory()
    person = UserFactory()
    url = admin_url("organization_change", organization.pk)

    added = admin_client.post(
        url,
        {
            "name": organization.name,
            **inline_management("memberships", total=1, initial=0),
            "memberships-0-user": person.pk,
            "memberships-0-roles": [role.pk],
        },
    )
    assert added.status_code == HTTPStatus.FOUND
    membership = Membership.objects.get(organization=organization, user=person)
    assert list(membership.roles.all()) == [role]

    changed = admin_client.post(
        url,
        {
            "name": organization.name,
            **inline_management("memberships", total=1, initial=1),
            "memberships-0-id": membership.pk,
            "memberships-0-organization": organization.pk,
            "memberships-0-roles": [other_role.pk],
        },
    )
    assert changed.status_code == HTTPStatus.FOUND
    assert list(membership.roles.all()) == [other_role]

    removed = admin_client.post(
        url,
        {
            "name": organization.name,
            **inline_management("memberships", total=1, initial=1),
            "memberships-0-id": membership.pk,
            "memberships-0-organization": organization.pk,
            "memberships-0-roles": [other_role.pk],
            "memberships-0-DELETE": "on",
        },
    )
    assert removed.status_code == HTTPStatus.FOUND
    assert not Membership.objects.filter(pk=membership.pk).exists()

    for action in (
        Action.MEMBERSHIP_ADDED,
        Action.MEMBERSHIP_ROLES_CHANGED,
        Action.MEMBERSHIP_REMOVED,
    ):
        [event] = events(action)
        assert event.org_code == organization.code and event.user_public_id == person.public_id
        assert_by_admin(event, admin_user)


def test_a_member_cannot_be_swapped_for_another_user_in_place(admin_client, organization):
    membership = MembershipFactory(organization=organization)
    stranger = UserFactory()
    admin_client.post(
        admin_url("organization_change", organization.pk),
        {
            "name": organization.name,
            **inline_management("memberships", total=1, initial=1),
            "memberships-0-id": membership.pk,
            "memberships-0-organization": organization.pk,
            "memberships-0-user": stranger.pk,  # ignored: the member side is fixed
        },
    )
    assert Membership.objects.get(pk=membership.pk).user == membership.user


def test_renaming_an_organization_is_audited(admin_client, admin_user, organization):
    response = admin_client.post(
        admin_url("organization_change", organization.pk),
        {"name": "Acme Corporation", **inline_management("memberships", total=0, initial=0)},
    )
    assert response.status_code == HTTPStatus.FOUND
    organization.refresh_from_db()
    assert organization.name == "Acme Corporation"
    [event] = events(Action.ORGANIZATION_UPDATED)
    assert event.details == {"name": "Acme Corporation"}
    assert_by_admin(event, admin_user)


def test_an_organization_without_keys_is_deleted_through_the_service(
    admin_client, admin_user, actor
):
    # Made by the service: its audit history refers to it, and stays after it is gone.
    organization = services.organization_create(name="Short-lived", actor=actor)
    MembershipFactory(organization=organization)
    response = admin_client.post(admin_url("organization_delete", organization.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Organization.objects.filter(pk=organization.pk).exists()
    [event] = events(Action.ORGANIZATION_DELETED)
    assert event.org_code == organization.code
    assert_by_admin(event, admin_user)
    assert [e.org_code for e in events(Action.ORGANIZATION_CREATED)] == [organization.code]


def test_deleting_an_organization_with_keys_revokes_them_and_keeps_them(
    admin_client, admin_user, issued_key, organization
):
    page = admin_client.get(admin_url("organization_delete", organization.pk)).content.decode()
    # The confirmation says what happens to the keys, which are not among what is deleted.
    assert "1 API key belongs to it and will not be deleted" in page
    assert "the 1 active one will be revoked at once" in page and organization.code in page
    assert issued_key.api_key.name not in page

    response = admin_client.post(admin_url("organization_delete", organization.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Organization.objects.filter(pk=organization.pk).exists()
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert (key.status, key.org_code, key.organization_id) == ("revoked", organization.code, None)
    [revoked] = events(Action.API_KEY_REVOKED)
    assert (revoked.target_id, revoked.details) == (key.id, {"reason": "organization deleted"})
    assert_by_admin(revoked, admin_user)
    [deleted] = events(Action.ORGANIZATION_DELETED)
    assert deleted.details["revoked_api_keys"] == 1
    assert_by_admin(deleted, admin_user)

    # The key list still shows it, with the deleted owner's code.
    listing = admin_client.get(admin_url("apikey_changelist")).content.decode()
    assert key.name in listing and "deleted organization" in listing
    detail = admin_client.get(admin_url("apikey_change", key.pk))
    assert detail.status_code == HTTPStatus.OK and organization.code in detail.content.decode()


# --------------------------------------------------------------------------- users


def test_users_are_searched_by_email_and_id(admin_client, user):
    UserFactory(email="someone.else@example.com")
    for term in (user.email, user.public_id):
        found = admin_client.get(admin_url("user_changelist"), {"q": term})
        assert [u.pk for u in found.context["cl"].result_list] == [user.pk]


def test_a_user_is_created_through_the_service(admin_client, admin_user):
    response = admin_client.post(
        admin_url("user_add"),
        {
            "email": "new.person@example.com",
            "first_name": "New",
            "last_name": "Person",
            "password1": "",
            "password2": "",
            **inline_management("memberships", total=0, initial=0),
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    person = User.objects.get(email="new.person@example.com")
    assert not person.has_usable_password()
    [event] = events(Action.USER_CREATED)
    assert event.target_id == person.public_id
    assert_by_admin(event, admin_user)


def test_a_staff_user_can_be_created_with_a_password(admin_client):
    response = admin_client.post(
        admin_url("user_add"),
        {
            "email": "staff@example.com",
            "password1": "a-long-unusual-passphrase-42",
            "password2": "a-long-unusual-passphrase-42",
            **inline_management("memberships", total=0, initial=0),
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    assert User.objects.get(email="staff@example.com").check_password(
        "a-long-unusual-passphrase-42"
    )


@pytest.mark.parametrize(
    "data, field",
    [
        ({"email": "taken@example.com"}, "email"),
        ({"email": "TAKEN@example.com"}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "ok@example.com", "password1": "abc", "password2": "abd"}, "password2"),
        ({"email": "ok@example.com", "password1": "123", "password2": "123"}, "password1"),
    ],
)
def test_a_bad_new_user_is_refused(admin_client, data, field):
    UserFactory(email="taken@example.com", username="taken@example.com")
    before = User.objects.count()
    response = admin_client.post(
        admin_url("user_add"), {**data, **inline_management("memberships", total=0, initial=0)}
    )
    assert response.status_code == HTTPStatus.OK
    assert field in response.context["adminform"].form.errors
    assert User.objects.count() == before


def test_changing_a_user_is_one_audited_update(admin_client, admin_user, user):
    permission = Permission.objects.get(codename="view_apikey")
    response = admin_client.post(
        admin_url("user_change", user.pk),
        {
            "email": "renamed@example.com",
            "first_name": user.first_name,
            "last_name": "Byron",
            "is_active": "on",
            "is_staff": "on",
            "user_permissions": [permission.pk],
            **inline_management("memberships", total=0, initial=0),
        },
    )
    assert response.status_code == HTTPStatus.FOUND
    user.refresh_from_db()
    assert (user.email, user.username, user.last_name, user.is_staff) == (
        "renamed@example.com",
        "renamed@example.com",
        "Byron",
        True,
    )
    assert user.has_perm("apikeys.view_apikey")
    [event] = events(Action.USER_UPDATED)
    assert event.details == {
        "email": "renamed@example.com",
        "last_name": "Byron",
        "is_staff": True,
        "user_permissions": ["apikeys.view_apikey"],
    }
    assert_by_admin(event, admin_user)


def test_the_user_page_shows_memberships_and_keys(admin_client, user_key, user, organization):
    role = RoleFactory(name="Key viewer")
    MembershipFactory(organization=organization, user=user, roles=[role])
    page = admin_client.get(admin_url("user_change", user.pk))
    html = page.content.decode()
    assert str(organization) in html and "Key viewer" in html
    assert user_key.api_key.name in html and f"?owner={user.public_id}" in html
    assert user_key.api_key.digest not in html


def test_deleting_users_revokes_and_keeps_their_keys(admin_client, admin_user, user_key, user):
    page = admin_client.get(admin_url("user_delete", user.pk)).content.decode()
    assert "1 API key belongs to it" in page and user.public_id in page
    admin_client.post(admin_url("user_delete", user.pk), {"post": "yes"})
    assert not User.objects.filter(pk=user.pk).exists()
    key = ApiKey.objects.get(pk=user_key.api_key.pk)
    assert (key.status, key.user_public_id, key.user_id) == ("revoked", user.public_id, None)

    other = UserFactory()
    page = admin_client.get(admin_url("user_delete", other.pk)).content.decode()
    assert "It owns no API keys." in page
    response = admin_client.post(admin_url("user_delete", other.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not User.objects.filter(pk=other.pk).exists()
    deleted = events(Action.USER_DELETED)
    assert [e.target_id for e in deleted] == [user.public_id, other.public_id]
    assert [e.details["revoked_api_keys"] for e in deleted] == [1, 0]
    for event in deleted + events(Action.API_KEY_REVOKED):
        assert_by_admin(event, admin_user)


def test_the_bulk_delete_of_owners_says_keys_are_revoked_and_kept(
    admin_client, issued_key, organization
):
    data = {"action": "delete_selected", "_selected_action": [organization.pk]}
    page = admin_client.post(admin_url("organization_changelist"), data).content.decode()
    assert "API keys are never deleted" in page
    admin_client.post(admin_url("organization_changelist"), {**data, "post": "yes"})
    assert not Organization.objects.filter(pk=organization.pk).exists()
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).status == "revoked"


# --------------------------------------------------------------------------- roles


def test_roles_are_created_and_changed_through_the_services(admin_client, admin_user):
    read = SystemPermission.objects.get(key=SystemPermission.READ_ORG_AUTHENTICATION)
    write = SystemPermission.objects.get(key=SystemPermission.WRITE_ORG_AUTHENTICATION)

    created = admin_client.post(
        admin_url("role_add"),
        {
            "key": "key-viewer",
            "name": "Key viewer",
            "description": "",
            "system_permissions": [read.pk],
        },
    )
    assert created.status_code == HTTPStatus.FOUND
    role = Role.objects.get(key="key-viewer")
    assert list(role.system_permissions.all()) == [read]

    changed = admin_client.post(
        admin_url("role_change", role.pk),
        {"name": "Key admin", "description": "Manages keys", "system_permissions": [write.pk]},
    )
    assert changed.status_code == HTTPStatus.FOUND
    role.refresh_from_db()
    assert (role.key, role.name, role.description) == ("key-viewer", "Key admin", "Manages keys")
    assert list(role.system_permissions.all()) == [write]

    assert [e.details for e in events(Action.ROLE_UPDATED)] == [
        {"name": "Key admin", "description": "Manages keys"}
    ]
    assert [e.details for e in events(Action.ROLE_PERMISSIONS_CHANGED)] == [
        {"added": [read.key], "removed": []},
        {"added": [write.key], "removed": [read.key]},
    ]
    for event in AuditEvent.objects.filter(target_type="role"):
        assert_by_admin(event, admin_user)


def test_roles_are_not_deleted_in_the_admin(admin_client):
    role = RoleFactory()
    response = admin_client.post(admin_url("role_delete", role.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Role.objects.filter(pk=role.pk).exists()


def test_system_permissions_are_read_only(admin_client):
    permission = SystemPermission.objects.first()
    assert admin_client.get(admin_url("systempermission_changelist")).status_code == HTTPStatus.OK
    assert admin_client.get(admin_url("systempermission_add")).status_code == HTTPStatus.FORBIDDEN
    response = admin_client.post(admin_url("systempermission_change", permission.pk), {"key": "x"})
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_the_owner_pages_list_keys_without_a_query_per_member(
    admin_client, organization, django_assert_max_num_queries
):
    roles = RoleFactory.create_batch(3)
    for _ in range(15):
        MembershipFactory(organization=organization, roles=roles)
    url = admin_url("organization_change", organization.pk)
    admin_client.get(url)
    # Session, user, organization, keys (count and latest), memberships with their users,
    # their roles, the role choices, content type for the log link: not one per member.
    with django_assert_max_num_queries(12):
        response = admin_client.get(url)
    assert response.status_code == HTTPStatus.OK
    assert len(response.context["inline_admin_formsets"][0].formset.forms) == 15
