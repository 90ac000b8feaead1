"""Services for APIs, scopes, organizations, users, roles and memberships."""

from __future__ import annotations

import pytest

from apikeys import exceptions, selectors, services
from apikeys.models import Api, ApiKey, AuditEvent, Membership, Scope, SystemPermission
from tests.factories import MembershipFactory, OrganizationFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_system_permissions_exist_after_migrate():
    assert set(SystemPermission.objects.values_list("key", flat=True)) >= {
        "read:org:authentication",
        "write:org:authentication",
    }


def test_api_create_and_duplicate_audience(actor):
    api = services.api_create(name="Orders", audience="https://orders", actor=actor)
    assert len(api.id) == 32 and int(api.id, 16) >= 0
    with pytest.raises(exceptions.AudienceTaken) as info:
        services.api_create(name="Other", audience="https://orders", actor=actor)
    assert info.value.code == "AUDIENCE_TAKEN"
    assert Api.objects.count() == 1
    assert AuditEvent.objects.filter(action="api.created").count() == 1


@pytest.mark.parametrize("field", ["name", "audience"])
@pytest.mark.parametrize("value", ["", "x" * 65, 7])
def test_api_create_bad_input(actor, field, value):
    kwargs = {"name": "Orders", "audience": "https://orders", field: value}
    with pytest.raises(exceptions.ValidationFailed):
        services.api_create(actor=actor, **kwargs)
    assert Api.objects.count() == 0


def test_scope_create_validates_key_and_uniqueness(api, actor):
    scope = services.scope_create(api=api, key="read:orders", description="Read", actor=actor)
    assert scope.id.startswith("api_scope_")
    with pytest.raises(exceptions.ScopeKeyTaken):
        services.scope_create(api=api, key="read:orders", actor=actor)
    for bad in ["", "has space", "x" * 65, None]:
        with pytest.raises(exceptions.ValidationFailed):
            services.scope_create(api=api, key=bad, actor=actor)
    assert Scope.objects.filter(api=api).count() == 1


def test_scope_update_changes_description_only(api, actor):
    scope = services.scope_create(api=api, key="read:orders", actor=actor)
    services.scope_update(scope=scope, description="Read orders", actor=actor)
    scope.refresh_from_db()
    assert (scope.key, scope.description) == ("read:orders", "Read orders")


def test_api_and_scope_in_use_by_active_keys_cannot_be_deleted(issued_key, api, read_users, actor):
    with pytest.raises(exceptions.ApiInUse):
        services.api_delete(api=api, actor=actor)
    with pytest.raises(exceptions.ScopeInUse):
        services.scope_delete(scope=read_users, actor=actor)
    assert Api.objects.filter(pk=api.pk).exists()
    assert Scope.objects.filter(pk=read_users.pk).exists()


def test_deleting_what_only_revoked_keys_use_keeps_them_readable(
    issued_key, api, read_users, actor
):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    services.scope_delete(scope=read_users, actor=actor)
    services.api_delete(api=api, actor=actor)
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.api is None
    assert key.api_public_id == api.id
    assert key.scope_list == ["read:users", "write:users"]
    assert key.status == "revoked"


def test_organization_create_with_and_without_code(actor):
    generated = services.organization_create(name="Acme", actor=actor)
    assert generated.code.startswith("org_")
    chosen = services.organization_create(name="Beta", code="org_beta1", actor=actor)
    assert chosen.code == "org_beta1"
    with pytest.raises(exceptions.OrganizationCodeTaken):
        services.organization_create(name="Again", code="org_beta1", actor=actor)
    for bad in ["beta", "org_", "org_UPPER", "org_with space", 5]:
        with pytest.raises(exceptions.ValidationFailed):
            services.organization_create(name="Bad", code=bad, actor=actor)


def test_user_create_validates_email_and_uniqueness(actor):
    user = services.user_create(email="ada@example.com", given_name="Ada", actor=actor)
    assert user.public_id.startswith("kp_") and len(user.public_id) == 35
    assert not user.has_usable_password()
    with pytest.raises(exceptions.EmailTaken):
        services.user_create(email="ADA@example.com", actor=actor)
    with pytest.raises(exceptions.ValidationFailed) as info:
        services.user_create(email="not-an-email", actor=actor)
    assert info.value.code == "INVALID_EMAIL"


def test_argon2_is_the_password_hasher(actor):
    user = services.user_create(
        email="pw@example.com", password="correct horse battery", actor=actor
    )
    assert user.password.startswith("argon2")
    assert user.check_password("correct horse battery")


def test_role_permissions_and_memberships_drive_portal_rights(actor):
    organization = OrganizationFactory()
    viewer_role = services.role_create(key="viewer", name="Viewer", actor=actor)
    admin_role = services.role_create(key="key-admin", name="Key admin", actor=actor)
    services.role_change_permissions(role=viewer_role, add=["read:org:authentication"], actor=actor)
    services.role_change_permissions(
        role=admin_role, add=["read:org:authentication", "write:org:authentication"], actor=actor
    )
    viewer, admin, outsider = UserFactory(), UserFactory(), UserFactory()
    services.membership_add(
        organization=organization, user=viewer, roles=[viewer_role], actor=actor
    )
    services.membership_add(organization=organization, user=admin, roles=[admin_role], actor=actor)
    assert selectors.can_read_org_keys(user=viewer, organization=organization)
    assert not selectors.can_write_org_keys(user=viewer, organization=organization)
    assert selectors.can_write_org_keys(user=admin, organization=organization)
    assert not selectors.can_read_org_keys(user=outsider, organization=organization)
    services.role_change_permissions(
        role=viewer_role, remove=["read:org:authentication"], actor=actor
    )
    assert not selectors.can_read_org_keys(user=viewer, organization=organization)
    with pytest.raises(exceptions.PermissionNotFound):
        services.role_change_permissions(role=viewer_role, add=["root:everything"], actor=actor)
    with pytest.raises(exceptions.RoleKeyTaken):
        services.role_create(key="viewer", name="Again", actor=actor)


def test_membership_add_twice_updates_roles(actor):
    membership = MembershipFactory()
    role = RoleFactory()
    services.membership_add(
        organization=membership.organization, user=membership.user, roles=[role], actor=actor
    )
    assert Membership.objects.count() == 1
    assert list(Membership.objects.get().roles.all()) == [role]
    assert AuditEvent.objects.filter(action="membership.roles_changed").count() == 1


def test_visible_to_limits_keys_to_own_and_readable_organizations(api, actor):
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    reader = services.role_create(key="reader", name="Reader", actor=actor)
    services.role_change_permissions(role=reader, add=["read:org:authentication"], actor=actor)
    member, plain_member, other = UserFactory(), UserFactory(), UserFactory()
    services.membership_add(organization=org_a, user=member, roles=[reader], actor=actor)
    services.membership_add(organization=org_a, user=plain_member, actor=actor)
    key_a = services.api_key_issue(name="A", api=api, organization=org_a, actor=actor).api_key
    services.api_key_issue(name="B", api=api, organization=org_b, actor=actor)
    own = services.api_key_issue(name="Mine", api=api, user=member, actor=actor).api_key
    services.api_key_issue(name="Theirs", api=api, user=other, actor=actor)
    assert set(ApiKey.objects.visible_to(member)) == {key_a, own}
    assert set(ApiKey.objects.visible_to(plain_member)) == set()
    assert set(ApiKey.objects.visible_to(other)).isdisjoint({key_a, own})
