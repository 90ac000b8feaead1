"""M2M applications in the admin: created through the service with the client secret shown
once, re-scoped, renamed and deleted through services; tokens only looked at."""

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
