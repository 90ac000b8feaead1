"""M2M applications in the admin: created through the service with the client secret shown
once, re-scoped, renamed, disabled, re-enabled, given a new secret (shown once) and deleted
through services, each audited and each reaching the tokens already issued; tokens only
looked at."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from oauth2_provider.models import get_access_token_model, get_application_model

from apikeys import services
from apikeys.models import AuditEvent, M2MGrant
from apikeys.oauth import granted_scopes
from tests.admin.helpers import shown_secrets
from tests.api.conftest import fetch_token

pytestmark = pytest.mark.django_db

Application = get_application_model()
Action = AuditEvent.Action
ADD_URL = reverse("admin:oauth2_provider_application_add")


def change_url(application) -> str:
    return reverse("admin:oauth2_provider_application_change", args=[quote(application.pk)])


def test_creating_an_application_shows_its_client_secret_once(admin_client, admin_user):
    response = admin_client.post(
        ADD_URL, {"name": "Billing", "scopes": ["read:api_keys", "verify:api_keys"]}
    )

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    [secret] = shown_secrets(response)
    application = Application.objects.get()
    assert application.client_id in response.content.decode()
    assert application.client_secret != secret  # stored hashed
    assert granted_scopes(application) == ["read:api_keys", "verify:api_keys"]
    [event] = AuditEvent.objects.filter(action=Action.APPLICATION_CREATED)
    assert event.actor_user == admin_user
    # Never again: not on its page, nor in the list.
    for url in (change_url(application), reverse("admin:oauth2_provider_application_changelist")):
        page = admin_client.get(url)
        assert page.status_code == HTTPStatus.OK
        assert secret not in page.content.decode()


def test_an_unknown_scope_is_refused(admin_client):
    response = admin_client.post(ADD_URL, {"name": "Bad", "scopes": ["root"]})
    assert response.status_code == HTTPStatus.OK
    assert "scopes" in response.context["adminform"].form.errors
    assert not Application.objects.exists()


def test_scopes_and_name_change_through_the_services(admin_client, admin_user, actor):
    issued = services.m2m_application_create(name="Reporter", scopes=["read:api_keys"], actor=actor)
    page = admin_client.get(change_url(issued.application))
    checked = re.findall(
        r'<input type="checkbox" name="scopes" value="([^"]+)"[^>]* checked', page.content.decode()
    )
    assert checked == ["read:api_keys"]

    response = admin_client.post(
        change_url(issued.application),
        {"name": "Reporter v2", "scopes": ["read:apis", "read:roles"]},
    )

    assert response.status_code == HTTPStatus.FOUND
    application = Application.objects.get()
    assert application.name == "Reporter v2"
    assert M2MGrant.objects.get().scope_list == ["read:apis", "read:roles"]
    updates = AuditEvent.objects.filter(action=Action.APPLICATION_UPDATED, actor_user=admin_user)
    # One change, one event, naming both.
    assert [sorted(e.details) for e in updates] == [["name", "scopes"]]


def test_deleting_an_application_is_audited_and_removes_its_grant(admin_client, admin_user, actor):
    issued = services.m2m_application_create(name="Old job", scopes=["read:apis"], actor=actor)
    url = reverse("admin:oauth2_provider_application_delete", args=[quote(issued.application.pk)])

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == HTTPStatus.FOUND
    assert not Application.objects.exists() and not M2MGrant.objects.exists()
    [event] = AuditEvent.objects.filter(action=Action.APPLICATION_DELETED)
    assert event.actor_user == admin_user and event.details == {"name": "Old job"}


def test_access_tokens_are_read_only_and_other_oauth_models_are_hidden(admin_client, actor):
    issued = services.m2m_application_create(name="Svc", scopes=["read:apis"], actor=actor)
    token = get_access_token_model().objects.create(
        application=issued.application,
        token="t" * 40,
        scope="read:apis",
        expires="2099-01-01T00:00Z",
    )
    url = reverse("admin:oauth2_provider_accesstoken_change", args=[token.pk])
    assert admin_client.get(url).status_code == HTTPStatus.OK
    assert (
        admin_client.post(url, {"scope": "read:apis create:apis"}).status_code
        == HTTPStatus.FORBIDDEN
    )
    delete = reverse("admin:oauth2_provider_accesstoken_delete", args=[token.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert get_access_token_model().objects.filter(pk=token.pk).exists()
    index = admin_client.get(reverse("admin:index")).content.decode()
    for hidden in ("grant", "idtoken", "refreshtoken"):
        assert f"/admin/oauth2_provider/{hidden}/" not in index


# ------------------------------------------------------------------ cutting a leaked secret off


def app_url(application, action: str) -> str:
    return reverse(f"admin:oauth2_provider_application_{action}", args=[quote(application.pk)])


@pytest.fixture
def holding_a_token(actor):
    """An application that has fetched a token, as every application in use has."""
    issued = services.m2m_application_create(name="Leaky", scopes=["read:api_keys"], actor=actor)
    response = fetch_token(issued.application.client_id, issued.client_secret)
    assert response.status_code == HTTPStatus.OK
    return issued, response.json()["access_token"]


def api_status(token: str) -> int:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/api_keys").status_code


def test_an_application_that_fetched_a_token_can_be_deleted_with_its_tokens(
    admin_client, admin_user, holding_a_token
):
    issued, token = holding_a_token
    url = app_url(issued.application, "delete")
    assert admin_client.get(url).status_code == HTTPStatus.OK

    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == HTTPStatus.FOUND
    assert not Application.objects.exists()
    assert not get_access_token_model().objects.exists()
    assert api_status(token) == HTTPStatus.UNAUTHORIZED
    [event] = AuditEvent.objects.filter(action=Action.APPLICATION_DELETED)
    assert event.actor_user == admin_user


def test_disabling_cuts_the_tokens_off_and_enabling_restores_them(
    admin_client, admin_user, holding_a_token
):
    issued, token = holding_a_token
    page = admin_client.get(change_url(issued.application)).content.decode()
    assert app_url(issued.application, "disable") in page
    assert admin_client.get(app_url(issued.application, "disable")).status_code == HTTPStatus.OK

    response = admin_client.post(app_url(issued.application, "disable"))

    assert response.status_code == HTTPStatus.FOUND
    assert not M2MGrant.objects.get().is_active
    assert api_status(token) == HTTPStatus.UNAUTHORIZED
    assert (
        fetch_token(issued.application.client_id, issued.client_secret).status_code
        == HTTPStatus.UNAUTHORIZED
    )
    changelist = admin_client.get(reverse("admin:oauth2_provider_application_changelist"))
    assert '<td class="field-status">disabled</td>' in changelist.content.decode()
    page = admin_client.get(change_url(issued.application)).content.decode()
    assert app_url(issued.application, "enable") in page

    assert admin_client.post(app_url(issued.application, "enable")).status_code == HTTPStatus.FOUND

    assert M2MGrant.objects.get().is_active
    assert api_status(token) == HTTPStatus.OK
    events = AuditEvent.objects.filter(
        action__in=[Action.APPLICATION_DISABLED, Action.APPLICATION_ENABLED]
    ).order_by("pk")
    assert [(e.action, e.actor_user) for e in events] == [
        (Action.APPLICATION_DISABLED, admin_user),
        (Action.APPLICATION_ENABLED, admin_user),
    ]


def test_regenerating_the_secret_shows_it_once_and_ends_the_old_one(
    admin_client, admin_user, holding_a_token
):
    issued, token = holding_a_token
    url = app_url(issued.application, "regenerate_secret")
    page = admin_client.get(url)
    assert page.status_code == HTTPStatus.OK
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.content.decode()).group(1)

    response = admin_client.post(url, {"form_token": form_token})

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    [secret] = shown_secrets(response)
    client_id = issued.application.client_id
    assert fetch_token(client_id, issued.client_secret).status_code == HTTPStatus.UNAUTHORIZED
    assert api_status(token) == HTTPStatus.UNAUTHORIZED
    assert fetch_token(client_id, secret).status_code == HTTPStatus.OK
    [event] = AuditEvent.objects.filter(action=Action.APPLICATION_SECRET_REGENERATED)
    assert event.actor_user == admin_user
    assert secret not in str(event.details)
    # A reload of the page that showed it regenerates nothing (the secret just copied stays).
    again = admin_client.post(url, {"form_token": form_token})
    assert again.status_code == HTTPStatus.OK and shown_secrets(again) == []
    assert fetch_token(client_id, secret).status_code == HTTPStatus.OK
    assert AuditEvent.objects.filter(action=Action.APPLICATION_SECRET_REGENERATED).count() == 1


def test_narrowing_the_scopes_in_the_admin_narrows_the_tokens_already_issued(
    admin_client, actor, issued_key
):
    from rest_framework.test import APIClient

    issued = services.m2m_application_create(
        name="Revoker", scopes=["read:api_keys", "delete:api_keys"], actor=actor
    )
    token = fetch_token(issued.application.client_id, issued.client_secret).json()["access_token"]
    response = admin_client.post(
        change_url(issued.application), {"name": "Revoker", "scopes": ["read:api_keys"]}
    )
    assert response.status_code == HTTPStatus.FOUND

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = client.delete(f"/api/v1/api_keys/{issued_key.api_key.id}")

    assert refused.status_code == HTTPStatus.FORBIDDEN
    issued_key.api_key.refresh_from_db()
    assert issued_key.api_key.status == "active"


@pytest.mark.parametrize("action", ["disable", "enable", "regenerate_secret"])
def test_staff_who_may_only_view_applications_cannot_cut_them_off(client, actor, action):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="view_application", content_type__app_label="oauth2_provider"
        )
    )
    client.force_login(viewer)
    issued = services.m2m_application_create(name="Svc", scopes=["read:apis"], actor=actor)

    response = client.post(app_url(issued.application, action))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert M2MGrant.objects.get().is_active
    assert not AuditEvent.objects.exclude(action=Action.APPLICATION_CREATED).exists()
