"""Audit completeness: every state change, through every door (the Management API, the
portal, the admin, the management commands), records exactly one ``AuditEvent``, with the
right action and the right actor: the M2M application for the API, the signed-in person
for the portal and the admin, the system for a command. Every action the audit trail knows
is reached through at least one door here, and what changes nothing records nothing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import ApiKey, AuditEvent, SystemPermission
from portal.services import portal_link_create
from tests.factories import UserFactory
from tests.formtokens import FormTokenClient, grant_form_token
from tests.security.conftest import World, token_for

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
SYSTEM = services.Actor.system()


@dataclass
class Doors:
    """The callers of every door, signed in, and the world they act on."""

    world: World
    api: APIClient
    application: Any
    portal: Client
    admin: Client
    admin_user: Any

    def fresh_key(self, **owner: Any) -> ApiKey:
        owner = owner or {"organization": self.world.organization}
        return services.api_key_issue(
            name="Spare", api=self.world.api, actor=SYSTEM, **owner
        ).api_key


@pytest.fixture
def doors(world: World) -> Doors:
    from tests.security.conftest import ALL_SCOPES

    application, _secret, token = token_for(ALL_SCOPES, name="Platform backend")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    portal = Client()
    portal.force_login(world.user)
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    admin = FormTokenClient()
    admin.force_login(admin_user)
    return Doors(world, api, application, portal, admin, admin_user)


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201, 302)), (
        response.status_code,
        response.content[:500],
    )
    return response


def memberships(total: int = 0, initial: int = 0) -> dict[str, str]:
    return {
        "memberships-TOTAL_FORMS": str(total),
        "memberships-INITIAL_FORMS": str(initial),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }


# Each operation: (door, action, prepare). ``prepare(doors)`` makes what the change needs
# (through the services, as the system, before the count starts) and returns the change.
Prepare = Callable[[Doors], Callable[[], Any]]


def api(
    method: str, path: Callable[[Doors], str], body: Callable[[Doors], Any] | None = None
) -> Prepare:
    def prepare(d: Doors) -> Callable[[], Any]:
        url, data = path(d), body(d) if body else None
        return lambda: ok(getattr(d.api, method)(url, data, format="json"))

    return prepare


def _fresh_api(d: Doors) -> str:
    return services.api_create(
        name="Spare", audience=f"https://spare-{ApiKey.objects.count()}.example", actor=SYSTEM
    ).id


def _fresh_scope(d: Doors) -> str:
    return services.scope_create(api=d.world.api, key="spare:scope", actor=SYSTEM).id


def _delete_fresh(d: Doors, path: Callable[[Doors], str]) -> Callable[[], Any]:
    url = path(d)
    return lambda: ok(d.api.delete(url))


def _portal_create(d: Doors) -> Callable[[], Any]:
    token = grant_form_token(d.portal)
    return lambda: ok(
        d.portal.post(
            "/portal/keys/new/", {"name": "Mine", "api": d.world.api.id, "form_token": token}
        ),
        200,
    )


def _portal_rotate(d: Doors) -> Callable[[], Any]:
    key, token = d.fresh_key(user=d.world.user), grant_form_token(d.portal)
    return lambda: ok(
        d.portal.post(
            f"/portal/keys/{key.pk}/rotate/", {"grace_seconds": "0", "form_token": token}
        ),
        200,
    )


def _portal_revoke(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key(user=d.world.user)
    return lambda: ok(d.portal.post(f"/portal/keys/{key.pk}/revoke/"), 302)


def _portal_limits(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key(user=d.world.user)
    return lambda: ok(
        d.portal.post(f"/portal/keys/{key.pk}/limits/", {"credits_remaining": "5"}), 302
    )


def _portal_link_used(d: Doors) -> Callable[[], Any]:
    path = portal_link_create(user=d.world.user, base_url="http://testserver", actor=SYSTEM).split(
        "testserver"
    )[1]
    return lambda: ok(Client().post(path), 302)


def _admin_issue(d: Doors) -> Callable[[], Any]:
    data = {
        "name": "Admin key",
        "api": d.world.api.pk,
        "organization": d.world.organization.pk,
        "user": "",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    return lambda: ok(d.admin.post("/admin/apikeys/apikey/add/", data), 200)


def _admin_rotate(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key()
    return lambda: ok(
        d.admin.post(f"/admin/apikeys/apikey/{quote(key.pk)}/rotate/", {"grace_seconds": "0"}), 200
    )


def _admin_revoke(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key()
    return lambda: ok(d.admin.post(f"/admin/apikeys/apikey/{quote(key.pk)}/revoke/"), 302)


def _admin_limits(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key()
    return lambda: ok(
        d.admin.post(f"/admin/apikeys/apikey/{quote(key.pk)}/limits/", {"credits_remaining": "5"}),
        302,
    )


def _admin_revoke_selected(d: Doors) -> Callable[[], Any]:
    key = d.fresh_key()
    data = {"action": "revoke_selected", "_selected_action": [key.pk], "post": "yes"}
    return lambda: ok(d.admin.post("/admin/apikeys/apikey/", data), 302)


def _admin_org_create(d: Doors) -> Callable[[], Any]:
    return lambda: ok(
        d.admin.post(
            "/admin/apikeys/organization/add/",
            {"name": "Initech", "code": "org_initech", **memberships()},
        ),
        302,
    )


def _admin_org_rename(d: Doors) -> Callable[[], Any]:
    org = d.world.organization
    data = {
        "name": "Acme Corporation",
        **memberships(1, 1),
        "memberships-0-id": org.memberships.get().pk,
        "memberships-0-organization": org.pk,
        "memberships-0-roles": [d.world.role.pk],
    }
    return lambda: ok(d.admin.post(f"/admin/apikeys/organization/{org.pk}/change/", data), 302)


def _admin_org_delete(d: Doors) -> Callable[[], Any]:
    org = services.organization_create(name="Short-lived", actor=SYSTEM)
    return lambda: ok(
        d.admin.post(f"/admin/apikeys/organization/{org.pk}/delete/", {"post": "yes"}), 302
    )


def _admin_member_removed(d: Doors) -> Callable[[], Any]:
    org = d.world.organization
    data = {
        "name": org.name,
        **memberships(1, 1),
        "memberships-0-id": org.memberships.get().pk,
        "memberships-0-organization": org.pk,
        "memberships-0-roles": [d.world.role.pk],
        "memberships-0-DELETE": "on",
    }
    return lambda: ok(d.admin.post(f"/admin/apikeys/organization/{org.pk}/change/", data), 302)


def _admin_user_create(d: Doors) -> Callable[[], Any]:
    data = {
        "email": "new.person@example.com",
        "first_name": "New",
        "last_name": "Person",
        "password1": "",
        "password2": "",
        **memberships(),
    }
    return lambda: ok(d.admin.post("/admin/apikeys/user/add/", data), 302)


def _admin_user_update(d: Doors) -> Callable[[], Any]:
    person = UserFactory(email="old@example.com", username="old@example.com")
    data = {
        "email": "renamed@example.com",
        "first_name": person.first_name,
        "last_name": person.last_name,
        "is_active": "on",
        **memberships(),
    }
    return lambda: ok(d.admin.post(f"/admin/apikeys/user/{person.pk}/change/", data), 302)


def _admin_user_delete(d: Doors) -> Callable[[], Any]:
    person = UserFactory()
    return lambda: ok(
        d.admin.post(f"/admin/apikeys/user/{person.pk}/delete/", {"post": "yes"}), 302
    )


def _admin_role_create(d: Doors) -> Callable[[], Any]:
    return lambda: ok(
        d.admin.post(
            "/admin/apikeys/role/add/", {"key": "viewer", "name": "Viewer", "description": ""}
        ),
        302,
    )


def _admin_role_update(d: Doors) -> Callable[[], Any]:
    role = d.world.role
    return lambda: ok(
        d.admin.post(
            f"/admin/apikeys/role/{role.pk}/change/", {"name": "Key boss", "description": ""}
        ),
        302,
    )


def _admin_role_permissions(d: Doors) -> Callable[[], Any]:
    role = d.world.role
    read = SystemPermission.objects.get(key=SystemPermission.READ_ORG_AUTHENTICATION)
    data = {"name": role.name, "description": role.description, "system_permissions": [read.pk]}
    return lambda: ok(d.admin.post(f"/admin/apikeys/role/{role.pk}/change/", data), 302)


def _admin_api_delete(d: Doors) -> Callable[[], Any]:
    api_id = _fresh_api(d)
    return lambda: ok(d.admin.post(f"/admin/apikeys/api/{api_id}/delete/", {"post": "yes"}), 302)


def _application(d: Doors) -> Any:
    return services.m2m_application_create(
        name="Reporter", scopes=["read:apis"], actor=SYSTEM
    ).application


def _admin_app_create(d: Doors) -> Callable[[], Any]:
    return lambda: ok(
        d.admin.post(
            "/admin/oauth2_provider/application/add/", {"name": "Billing", "scopes": ["read:apis"]}
        ),
        200,
    )


def _admin_app_rename(d: Doors) -> Callable[[], Any]:
    app = _application(d)
    data = {"name": "Reporter v2", "scopes": ["read:apis"]}
    return lambda: ok(
        d.admin.post(f"/admin/oauth2_provider/application/{quote(app.pk)}/change/", data), 302
    )


def _admin_app_delete(d: Doors) -> Callable[[], Any]:
    app = _application(d)
    return lambda: ok(
        d.admin.post(
            f"/admin/oauth2_provider/application/{quote(app.pk)}/delete/", {"post": "yes"}
        ),
        302,
    )


def _admin_app_disable(d: Doors) -> Callable[[], Any]:
    app = _application(d)
    url = f"/admin/oauth2_provider/application/{quote(app.pk)}/disable/"
    return lambda: ok(d.admin.post(url), 302)


def _admin_app_enable(d: Doors) -> Callable[[], Any]:
    app = _application(d)
    services.m2m_application_disable(application=app, actor=SYSTEM)
    url = f"/admin/oauth2_provider/application/{quote(app.pk)}/enable/"
    return lambda: ok(d.admin.post(url), 302)


def _admin_app_regenerate_secret(d: Doors) -> Callable[[], Any]:
    app = _application(d)
    url = f"/admin/oauth2_provider/application/{quote(app.pk)}/regenerate_secret/"
    return lambda: ok(d.admin.post(url, {}), 200)


def _admin_self_serve(d: Doors) -> Callable[[], Any]:
    from portal.models import SelfServeSettings

    row = SelfServeSettings.load()
    data = {"user_keys_enabled": "on", "portal_link_lifetime_seconds": "600", "_save": "Save"}
    return lambda: ok(d.admin.post(f"/admin/portal/selfservesettings/{row.pk}/change/", data), 302)


def _admin_platform_key_policy(d: Doors) -> Callable[[], Any]:
    data = {"max_lifetime_days": "90", "max_active_keys": "", "max_idle_days": "", "_save": "Save"}
    return lambda: ok(d.admin.post("/admin/apikeys/platformkeypolicy/1/change/", data), 302)


def _admin_org_key_policy(d: Doors) -> Callable[[], Any]:
    org = d.world.organization
    data = {
        "name": org.name,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "key_policy-TOTAL_FORMS": "1",
        "key_policy-INITIAL_FORMS": "0",
        "key_policy-0-organization": str(org.pk),
        "key_policy-0-max_active_keys": "50",
        "_save": "Save",
    }
    # Every current member is sent back unchanged (the page's own inline rows).
    members = list(org.memberships.order_by("pk"))
    data["memberships-TOTAL_FORMS"] = data["memberships-INITIAL_FORMS"] = str(len(members))
    for i, membership in enumerate(members):
        data[f"memberships-{i}-id"] = str(membership.pk)
        data[f"memberships-{i}-organization"] = str(org.pk)
        data[f"memberships-{i}-user"] = str(membership.user_id)
        data[f"memberships-{i}-roles"] = [str(r.pk) for r in membership.roles.all()]
    return lambda: ok(d.admin.post(f"/admin/apikeys/organization/{org.pk}/change/", data), 302)


def _command_revoke_idle(d: Doors) -> Callable[[], Any]:
    from datetime import timedelta

    from django.utils import timezone

    key = d.fresh_key()
    services.organization_key_policy_set(
        organization=d.world.organization,
        max_lifetime_days=None,
        max_active_keys=None,
        max_idle_days=1,
        actor=SYSTEM,
    )
    ApiKey.objects.filter(pk=key.pk).update(created_on=timezone.now() - timedelta(days=2))
    return lambda: _call("apikeys_revoke_idle")


def _permission(codename: str) -> Any:
    from django.contrib.auth.models import Permission

    return Permission.objects.get(content_type__app_label="apikeys", codename=codename)


def _staff_group(d: Doors) -> Any:
    return services.staff_group_create(
        name="Key auditors", permissions=[_permission("view_apikey")], actor=SYSTEM
    )


def _admin_staff_group_create(d: Doors) -> Callable[[], Any]:
    data = {"name": "Key issuers", "permissions": [_permission("add_apikey").pk]}
    return lambda: ok(d.admin.post("/admin/auth/group/add/", data), 302)


def _admin_staff_group_update(d: Doors) -> Callable[[], Any]:
    group = _staff_group(d)
    data = {"name": group.name, "permissions": [_permission("change_apikey").pk]}
    return lambda: ok(d.admin.post(f"/admin/auth/group/{group.pk}/change/", data), 302)


def _admin_staff_group_delete(d: Doors) -> Callable[[], Any]:
    group = _staff_group(d)
    return lambda: ok(d.admin.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}), 302)


def _command_createm2mapp(d: Doors) -> Callable[[], Any]:
    return lambda: json.loads(_call("createm2mapp", "Cron job", "--scope", "read:apis"))


def _command_portallink(d: Doors) -> Callable[[], Any]:
    return lambda: _call("portallink", d.world.user.email, "--base-url", "https://keys.example.com")


def _command_clearportallinks(d: Doors) -> Callable[[], Any]:
    from datetime import timedelta

    from django.utils import timezone

    from portal.models import PortalLink

    _call("portallink", d.world.user.email, "--base-url", "https://keys.example.com")
    PortalLink.objects.update(expires_at=timezone.now() - timedelta(days=8))
    return lambda: _call("clearportallinks")


def _call(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# A public address written as an IP: a webhook URL the checks accept without DNS.
PUBLIC_HOOK = "https://93.184.215.14/hooks"


def _fresh_webhook(d: Doors, url: str = PUBLIC_HOOK) -> Any:
    return services.webhook_create(
        endpoint_url=url, event_types=["api_key.created"], actor=SYSTEM
    ).webhook


def _webhook_update(d: Doors) -> Callable[[], Any]:
    url = f"/api/v1/webhooks/{_fresh_webhook(d).id}"
    return lambda: ok(d.api.patch(url, {"description": "New"}, format="json"))


def _webhook_retry(d: Doors) -> Callable[[], Any]:
    webhook = _fresh_webhook(d)
    d.fresh_key()
    delivery = webhook.deliveries.get()
    url = f"/api/v1/webhooks/{webhook.id}/deliveries/{delivery.id}/retry"
    return lambda: ok(d.api.post(url))


def _webhook_disabled(d: Doors) -> Callable[[], Any]:
    """The delivery task (the system) disables an endpoint failing for days: here its
    address is refused at delivery time (loopback), a failure like any other."""
    from datetime import timedelta

    from django.utils import timezone

    from apikeys.models import Webhook
    from apikeys.services.webhooks import webhook_delivery_attempt

    webhook = _fresh_webhook(d)
    d.fresh_key()
    Webhook.objects.filter(pk=webhook.pk).update(
        endpoint_url="http://127.0.0.1:9/hooks",
        failing_since=timezone.now() - timedelta(days=6),
    )
    delivery = webhook.deliveries.get()
    return lambda: webhook_delivery_attempt(delivery_id=delivery.id)


KEY = "/api/v1/api_keys"
OPERATIONS: list[tuple[str, str, Prepare]] = [
    # The Management API: the M2M application that called.
    (
        "api",
        Action.API_CREATED,
        api(
            "post",
            lambda d: "/api/v1/apis",
            lambda d: {"name": "New", "audience": "https://new.example"},
        ),
    ),
    (
        "api",
        Action.API_DELETED,
        lambda d: _delete_fresh(d, lambda d: f"/api/v1/apis/{_fresh_api(d)}"),
    ),
    (
        "api",
        Action.SCOPE_CREATED,
        api(
            "post",
            lambda d: f"/api/v1/apis/{d.world.api.id}/scopes",
            lambda d: {"key": "new:scope"},
        ),
    ),
    (
        "api",
        Action.SCOPE_UPDATED,
        api(
            "patch",
            lambda d: f"/api/v1/apis/{d.world.api.id}/scopes/{d.world.scopes[0].id}",
            lambda d: {"description": "Changed"},
        ),
    ),
    (
        "api",
        Action.SCOPE_DELETED,
        lambda d: _delete_fresh(
            d, lambda d: f"/api/v1/apis/{d.world.api.id}/scopes/{_fresh_scope(d)}"
        ),
    ),
    (
        "api",
        Action.ORGANIZATION_CREATED,
        api("post", lambda d: "/api/v1/organization", lambda d: {"name": "Globex"}),
    ),
    (
        "api",
        Action.ORGANIZATION_UPDATED,
        api(
            "patch",
            lambda d: f"/api/v1/organization/{d.world.organization.code}",
            lambda d: {"name": "Acme 2"},
        ),
    ),
    (
        "api",
        Action.KEY_POLICY_CHANGED,
        api(
            "put",
            lambda d: f"/api/v1/organizations/{d.world.organization.code}/api_key_policy",
            lambda d: {"max_lifetime_days": 30, "max_active_keys": None, "max_idle_days": None},
        ),
    ),
    (
        "api",
        Action.USER_CREATED,
        api("post", lambda d: "/api/v1/user", lambda d: {"email": "grace@example.com"}),
    ),
    (
        "api",
        Action.ROLE_CREATED,
        api("post", lambda d: "/api/v1/roles", lambda d: {"name": "Viewer", "key": "viewer"}),
    ),
    (
        "api",
        Action.ROLE_PERMISSIONS_CHANGED,
        api(
            "patch",
            lambda d: f"/api/v1/roles/{d.world.role.id}/system_permissions",
            lambda d: {"system_permissions": [{"key": "read:org:authentication"}]},
        ),
    ),
    (
        "api",
        Action.MEMBERSHIP_ADDED,
        api(
            "post",
            lambda d: f"/api/v1/organizations/{d.world.organization.code}/users",
            lambda d: {"users": [{"id": UserFactory().public_id}]},
        ),
    ),
    (
        "api",
        Action.MEMBERSHIP_ROLES_CHANGED,
        api(
            "post",
            lambda d: f"/api/v1/organizations/{d.world.organization.code}/users",
            lambda d: {"users": [{"id": d.world.user.public_id, "roles": []}]},
        ),
    ),
    (
        "api",
        Action.API_KEY_ISSUED,
        api(
            "post",
            lambda d: KEY,
            lambda d: {
                "name": "New",
                "api_id": d.world.api.id,
                "org_code": d.world.organization.code,
            },
        ),
    ),
    (
        "api",
        Action.API_KEY_ROTATED,
        api("put", lambda d: f"{KEY}/{d.fresh_key().pk}", lambda d: {}),
    ),
    ("api", Action.API_KEY_REVOKED, api("delete", lambda d: f"{KEY}/{d.fresh_key().pk}")),
    (
        "api",
        Action.API_KEY_UPDATED,
        api(
            "patch",
            lambda d: f"{KEY}/{d.fresh_key().pk}",
            lambda d: {"ratelimit": {"limit": 5, "duration": 60}},
        ),
    ),
    (
        "api",
        Action.PORTAL_LINK_CREATED,
        api(
            "post",
            lambda d: "/api/v1/portal/generate_url",
            lambda d: {"user_id": d.world.user.public_id},
        ),
    ),
    (
        "api",
        Action.WEBHOOK_CREATED,
        api(
            "post",
            lambda d: "/api/v1/webhooks",
            lambda d: {"endpoint_url": PUBLIC_HOOK, "event_types": ["api_key.created"]},
        ),
    ),
    (
        "api",
        Action.WEBHOOK_UPDATED,
        _webhook_update,
    ),
    (
        "api",
        Action.WEBHOOK_DELETED,
        lambda d: _delete_fresh(d, lambda d: f"/api/v1/webhooks/{_fresh_webhook(d).id}"),
    ),
    ("api", Action.WEBHOOK_DELIVERY_RETRIED, _webhook_retry),
    ("command", Action.WEBHOOK_DISABLED, _webhook_disabled),
    # The portal: the signed-in person.
    ("portal", Action.API_KEY_ISSUED, _portal_create),
    ("portal", Action.API_KEY_ROTATED, _portal_rotate),
    ("portal", Action.API_KEY_REVOKED, _portal_revoke),
    ("portal", Action.API_KEY_UPDATED, _portal_limits),
    ("portal", Action.PORTAL_LINK_USED, _portal_link_used),
    # The admin: the staff member.
    ("admin", Action.API_KEY_ISSUED, _admin_issue),
    ("admin", Action.API_KEY_ROTATED, _admin_rotate),
    ("admin", Action.API_KEY_REVOKED, _admin_revoke),
    ("admin", Action.API_KEY_UPDATED, _admin_limits),
    ("admin", Action.API_KEY_REVOKED, _admin_revoke_selected),
    ("admin", Action.ORGANIZATION_CREATED, _admin_org_create),
    ("admin", Action.ORGANIZATION_UPDATED, _admin_org_rename),
    ("admin", Action.ORGANIZATION_DELETED, _admin_org_delete),
    ("admin", Action.MEMBERSHIP_REMOVED, _admin_member_removed),
    ("admin", Action.USER_CREATED, _admin_user_create),
    ("admin", Action.USER_UPDATED, _admin_user_update),
    ("admin", Action.USER_DELETED, _admin_user_delete),
    ("admin", Action.ROLE_CREATED, _admin_role_create),
    ("admin", Action.ROLE_UPDATED, _admin_role_update),
    ("admin", Action.ROLE_PERMISSIONS_CHANGED, _admin_role_permissions),
    ("admin", Action.API_DELETED, _admin_api_delete),
    ("admin", Action.APPLICATION_CREATED, _admin_app_create),
    ("admin", Action.APPLICATION_UPDATED, _admin_app_rename),
    ("admin", Action.APPLICATION_DELETED, _admin_app_delete),
    ("admin", Action.APPLICATION_DISABLED, _admin_app_disable),
    ("admin", Action.APPLICATION_ENABLED, _admin_app_enable),
    ("admin", Action.APPLICATION_SECRET_REGENERATED, _admin_app_regenerate_secret),
    ("admin", Action.SELF_SERVE_SETTINGS_CHANGED, _admin_self_serve),
    ("admin", Action.KEY_POLICY_CHANGED, _admin_platform_key_policy),
    ("admin", Action.KEY_POLICY_CHANGED, _admin_org_key_policy),
    ("admin", Action.STAFF_GROUP_CREATED, _admin_staff_group_create),
    ("admin", Action.STAFF_GROUP_UPDATED, _admin_staff_group_update),
    ("admin", Action.STAFF_GROUP_DELETED, _admin_staff_group_delete),
    # Management commands: the system.
    ("command", Action.APPLICATION_CREATED, _command_createm2mapp),
    ("command", Action.PORTAL_LINK_CREATED, _command_portallink),
    ("command", Action.PORTAL_LINKS_PURGED, _command_clearportallinks),
    ("command", Action.API_KEY_REVOKED, _command_revoke_idle),
]


def _label(op: tuple[str, str, Prepare]) -> str:
    return f"{op[0]}-{op[1]}-{getattr(op[2], '__name__', 'api').lstrip('_')}"


@pytest.mark.parametrize("door, action, prepare", OPERATIONS, ids=[_label(op) for op in OPERATIONS])
def test_every_change_through_every_door_records_one_event_with_its_actor(
    doors: Doors, door: str, action: str, prepare: Prepare
) -> None:
    change = prepare(doors)
    before = set(AuditEvent.objects.values_list("pk", flat=True))

    change()

    new = list(AuditEvent.objects.exclude(pk__in=before))
    assert [e.action for e in new] == [action], [(e.action, e.actor_label) for e in new]
    [event] = new
    expected = {
        "api": ("application", None, doors.application.pk, doors.application.name),
        "portal": ("user", doors.world.user.pk, None, doors.world.user.display_name),
        "admin": ("user", doors.admin_user.pk, None, doors.admin_user.display_name),
        "command": ("system", None, None, "system"),
    }[door]
    assert (
        event.actor_type,
        event.actor_user_id,
        event.actor_application_id,
        event.actor_label,
    ) == expected
    assert event.target_id


@pytest.mark.parametrize("kind", ["organization", "user"])
def test_deleting_an_owner_records_one_revocation_per_active_key_then_the_deletion(
    doors: Doors, kind: str
) -> None:
    """One deletion changes several things: each of the owner's active keys is revoked
    (one event each, by the same actor), then the owner goes (one event)."""
    owner = (
        services.organization_create(name="Leaving", actor=SYSTEM)
        if kind == "organization"
        else UserFactory()
    )
    active = [doors.fresh_key(**{kind: owner}) for _ in range(3)]
    services.api_key_revoke(api_key=doors.fresh_key(**{kind: owner}), actor=SYSTEM)
    before = set(AuditEvent.objects.values_list("pk", flat=True))

    ok(doors.admin.post(f"/admin/apikeys/{kind}/{owner.pk}/delete/", {"post": "yes"}), 302)

    new = list(AuditEvent.objects.exclude(pk__in=before).order_by("pk"))
    assert [e.action for e in new] == [Action.API_KEY_REVOKED] * 3 + [f"{kind}.deleted"]
    assert sorted(e.target_id for e in new[:3]) == sorted(k.pk for k in active)
    for event in new:
        assert (event.actor_type, event.actor_user_id) == ("user", doors.admin_user.pk)


def test_every_action_of_the_audit_trail_is_reached_through_some_door() -> None:
    reached = {action for _, action, _ in OPERATIONS}
    assert reached == set(Action.values), set(Action.values) - reached
    assert {door for door, _, _ in OPERATIONS} == {"api", "portal", "admin", "command"}


@pytest.mark.parametrize(
    "what",
    [
        "revoke-twice-api",
        "revoke-twice-admin",
        "verify",
        "refused-create",
        "refused-rotate",
        "refused-delete",
        "portal-outsider",
    ],
)
def test_what_changes_nothing_records_nothing(doors: Doors, what: str) -> None:
    revoked = doors.fresh_key()
    services.api_key_revoke(api_key=revoked, actor=SYSTEM)
    in_use_api = doors.world.api.id
    before = AuditEvent.objects.count()
    if what == "revoke-twice-api":
        ok(doors.api.delete(f"{KEY}/{revoked.pk}"), 200)
    elif what == "revoke-twice-admin":
        doors.admin.post(f"/admin/apikeys/apikey/{quote(revoked.pk)}/revoke/")
    elif what == "verify":
        ok(
            doors.api.post(
                f"{KEY}/verify", {"api_key": doors.world.keys[0].plaintext}, format="json"
            ),
            200,
        )
    elif what == "refused-create":
        ok(
            doors.api.post(KEY, {"name": "x", "api_id": in_use_api}, format="json"),
            HTTPStatus.BAD_REQUEST,
        )
    elif what == "refused-rotate":
        ok(doors.api.put(f"{KEY}/{revoked.pk}", {}, format="json"), HTTPStatus.BAD_REQUEST)
    elif what == "refused-delete":
        ok(doors.api.delete(f"/api/v1/apis/{in_use_api}"), HTTPStatus.CONFLICT)
    else:
        outsider = Client()
        outsider.force_login(UserFactory())
        key = doors.world.keys[1].api_key
        ok(outsider.post(f"/portal/keys/{key.pk}/revoke/"), HTTPStatus.NOT_FOUND)
    assert AuditEvent.objects.count() == before
