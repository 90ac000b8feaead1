"""The portal in the admin: self-serve switches editable and audited, portal links read-only."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from apikeys import services
from apikeys.models import AuditEvent
from portal.models import PortalLink, SelfServeSettings
from portal.services import portal_link_create
from tests.factories import UserFactory

CHANGE = "/admin/portal/selfservesettings/1/change/"


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_settings_list_opens_the_one_row(admin_client):
    response = admin_client.get("/admin/portal/selfservesettings/")
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, CHANGE)
    assert admin_client.get(CHANGE).status_code == HTTPStatus.OK


def test_switching_a_kind_off_in_the_admin_is_saved_and_audited(admin_client):
    response = admin_client.post(
        CHANGE,
        {"organization_keys_enabled": "on", "portal_link_lifetime_seconds": "600", "_save": "Save"},
    )
    assert response.status_code == HTTPStatus.FOUND
    row = SelfServeSettings.load()
    assert (
        row.user_keys_enabled,
        row.organization_keys_enabled,
        row.portal_link_lifetime_seconds,
    ) == (
        False,
        True,
        600,
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED)
    assert event.actor_user.is_superuser
    assert event.details["changes"] == {
        "user_keys_enabled": [True, False],
        "portal_link_lifetime_seconds": [300, 600],
    }


def test_an_out_of_range_lifetime_is_refused_in_the_admin(admin_client):
    response = admin_client.post(
        CHANGE,
        {
            "user_keys_enabled": "on",
            "organization_keys_enabled": "on",
            "portal_link_lifetime_seconds": "5",
        },
    )
    assert response.status_code == HTTPStatus.OK
    assert "portal_link_lifetime_seconds" in response.context["adminform"].form.errors
    assert SelfServeSettings.load().portal_link_lifetime_seconds == 300
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.SELF_SERVE_SETTINGS_CHANGED
    ).exists()


def test_the_settings_row_can_be_neither_added_nor_deleted(admin_client):
    SelfServeSettings.load()
    assert (
        admin_client.get("/admin/portal/selfservesettings/add/").status_code == HTTPStatus.FORBIDDEN
    )
    assert (
        admin_client.post("/admin/portal/selfservesettings/1/delete/", {"post": "yes"}).status_code
        == HTTPStatus.FORBIDDEN
    )
    assert SelfServeSettings.objects.count() == 1


def test_staff_without_the_permission_cannot_change_the_switches(client, db):
    client.force_login(UserFactory(is_staff=True))
    SelfServeSettings.load()
    response = client.post(CHANGE, {"portal_link_lifetime_seconds": "600"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert SelfServeSettings.load().user_keys_enabled is True


def test_portal_links_are_listed_read_only_and_never_show_their_digest(admin_client, user):
    portal_link_create(
        user=user, base_url="https://keys.example.com", actor=services.Actor.system()
    )
    link = PortalLink.objects.get()
    listing = admin_client.get("/admin/portal/portallink/")
    assert listing.status_code == HTTPStatus.OK
    assert user.email.encode() in listing.content and link.digest.encode() not in listing.content
    detail = admin_client.get(f"/admin/portal/portallink/{link.pk}/change/")
    assert detail.status_code == HTTPStatus.OK and link.digest.encode() not in detail.content
    assert b'name="_save"' not in detail.content
    assert (
        admin_client.post(
            f"/admin/portal/portallink/{link.pk}/change/", {"sub_nav": "api_keys"}
        ).status_code
        == HTTPStatus.FORBIDDEN
    )
    assert admin_client.get("/admin/portal/portallink/add/").status_code == HTTPStatus.FORBIDDEN
    assert (
        admin_client.post(
            f"/admin/portal/portallink/{link.pk}/delete/", {"post": "yes"}
        ).status_code
        == HTTPStatus.FORBIDDEN
    )
    assert PortalLink.objects.get().used_at is None
