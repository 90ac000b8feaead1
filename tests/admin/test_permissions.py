"""Who may do what with keys in the admin: view, issue, rotate and revoke each need their
model permission; nobody deletes a key; nobody edits the audit trail."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apikeys.models import ApiKey, AuditEvent
from tests.admin.helpers import action_names, admin_url

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:apikeys_apikey_changelist")


def key_urls(api_key: ApiKey) -> dict[str, str]:
    return {
        "detail": admin_url("apikey_change", api_key.pk),
        "rotate": admin_url("apikey_rotate", api_key.pk),
        "revoke": admin_url("apikey_revoke", api_key.pk),
        "delete": admin_url("apikey_delete", api_key.pk),
    }


def test_staff_without_the_permission_cannot_see_keys(staff_client, issued_key):
    client = staff_client()  # staff, but no permission on keys
    urls = key_urls(issued_key.api_key)

    assert client.get(LIST_URL).status_code == HTTPStatus.FORBIDDEN
    assert client.get(urls["detail"]).status_code == HTTPStatus.FORBIDDEN
    assert client.get(reverse("admin:apikeys_apikey_add")).status_code == HTTPStatus.FORBIDDEN
    index = client.get(reverse("admin:index")).content.decode()
    assert LIST_URL not in index
    assert issued_key.api_key.name not in index


def test_staff_without_the_permission_cannot_issue_rotate_or_revoke(
    staff_client, issued_key, api, organization
):
    client = staff_client("view_apikey")
    urls = key_urls(issued_key.api_key)
    before = ApiKey.objects.values_list("digest", "status").get()

    issue = client.post(
        reverse("admin:apikeys_apikey_add"),
        {"name": "Sneaky", "api": api.pk, "organization": organization.pk},
    )
    rotate = client.post(urls["rotate"], {"grace_seconds": "0"})
    revoke = client.post(urls["revoke"])

    assert [issue.status_code, rotate.status_code, revoke.status_code] == [HTTPStatus.FORBIDDEN] * 3
    assert ApiKey.objects.count() == 1
    assert ApiKey.objects.values_list("digest", "status").get() == before


def test_view_permission_shows_keys_read_only_without_actions(staff_client, issued_key):
    client = staff_client("view_apikey")
    urls = key_urls(issued_key.api_key)

    listing = client.get(LIST_URL)
    detail = client.get(urls["detail"])

    assert listing.status_code == detail.status_code == HTTPStatus.OK
    assert issued_key.api_key.name in listing.content.decode()
    actions = action_names(listing)
    assert "rotate_selected" not in actions and "revoke_selected" not in actions
    assert urls["rotate"] not in detail.content.decode()
    assert urls["revoke"] not in detail.content.decode()


def test_change_permission_allows_rotate_and_revoke(staff_client, issued_key):
    client = staff_client("view_apikey", "change_apikey")
    urls = key_urls(issued_key.api_key)

    detail = client.get(urls["detail"]).content.decode()
    listing = client.get(LIST_URL)
    actions = action_names(listing)

    assert urls["rotate"] in detail and urls["revoke"] in detail
    assert {"rotate_selected", "revoke_selected"} <= set(actions)
    assert client.post(urls["revoke"]).status_code == HTTPStatus.FOUND
    assert ApiKey.objects.get().status == ApiKey.Status.REVOKED


def test_add_permission_allows_issuing(staff_client, api, organization):
    client = staff_client("add_apikey")
    response = client.post(
        reverse("admin:apikeys_apikey_add"),
        {"name": "Allowed", "api": api.pk, "organization": organization.pk},
    )
    assert response.status_code == HTTPStatus.OK
    assert ApiKey.objects.get().name == "Allowed"


def test_nobody_deletes_a_key_not_even_a_superuser(admin_client, issued_key):
    urls = key_urls(issued_key.api_key)

    assert admin_client.get(urls["delete"]).status_code == HTTPStatus.FORBIDDEN
    assert admin_client.post(urls["delete"], {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    listing = admin_client.get(LIST_URL)
    actions = action_names(listing)
    assert "delete_selected" not in actions
    # The bulk action cannot be forced by posting its name either.
    admin_client.post(
        LIST_URL,
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [issued_key.api_key.pk], "post": "yes"},
    )
    assert ApiKey.objects.filter(pk=issued_key.api_key.pk).exists()


def test_the_key_detail_page_cannot_be_edited(admin_client, issued_key):
    url = key_urls(issued_key.api_key)["detail"]
    response = admin_client.post(url, {"name": "Renamed"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert ApiKey.objects.get().name == "Backend"


def test_the_audit_trail_is_read_only_even_for_a_superuser(admin_client, issued_key):
    event = AuditEvent.objects.get()
    change_url = admin_url("auditevent_change", event.pk)

    assert admin_client.get(change_url).status_code == HTTPStatus.OK
    assert (
        admin_client.get(reverse("admin:apikeys_auditevent_add")).status_code
        == HTTPStatus.FORBIDDEN
    )
    assert (
        admin_client.post(change_url, {"action": "api_key.revoked"}).status_code
        == HTTPStatus.FORBIDDEN
    )
    delete_url = admin_url("auditevent_delete", event.pk)
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert AuditEvent.objects.get().action == AuditEvent.Action.API_KEY_ISSUED


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/apikeys/apikey/{key}/change/",
        "/admin/apikeys/organization/{key}/change/",
        "/admin/apikeys/auditevent/{key}/change/",
        "/admin/portal/portallink/{key}/change/",
    ],
)
def test_a_key_typed_into_an_admin_url_is_not_echoed_back(admin_client, path):
    from apikeys import crypto

    key = crypto.generate_key()
    response = admin_client.get(path.format(key=key), follow=True)
    assert response.status_code == 200
    assert key not in response.content.decode()
    assert "does not exist" in response.content.decode()


@pytest.mark.django_db
def test_a_non_ascii_digit_owner_in_the_issue_form_query_is_ignored(admin_client):
    response = admin_client.get("/admin/apikeys/apikey/add/?organization=%C2%B9&user=%C2%B2")
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/admin/apikeys/apikey/%00/change/",
        "/admin/apikeys/apikey/api_key_%00/rotate/",
        "/admin/apikeys/organization/%00/change/",
        "/admin/apikeys/api/%00/change/",
        "/admin/apikeys/role/%00/change/",
        "/admin/apikeys/apikey/?q=%00",
        "/admin/apikeys/apikey/?owner=org_%00",
        "/admin/apikeys/auditevent/?q=%00",
        "/admin/apikeys/organization/?q=%00",
        "/admin/apikeys/user/?q=%00",
    ],
)
def test_nul_in_an_admin_url_is_never_a_server_error(admin_client, path):
    """PostgreSQL refuses NUL in text where SQLite accepts it: on both, a page, not a 500."""
    response = admin_client.get(path, follow=True)
    assert response.status_code == (400 if "?" in path else 404)
