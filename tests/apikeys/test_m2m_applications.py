"""M2M applications: creation, grants, the management command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model

from apikeys import exceptions, services
from apikeys.models import AuditEvent
from apikeys.oauth import GrantedScopes

pytestmark = pytest.mark.django_db


def test_create_application_hashes_the_secret_and_grants_scopes(actor):
    issued = services.m2m_application_create(
        name="Billing", scopes=["read:api_keys", "verify:api_keys"], actor=actor
    )
    app = get_application_model().objects.get(pk=issued.application.pk)
    assert app.client_secret != issued.client_secret  # stored hashed
    assert issued.client_secret not in repr(issued)
    assert app.authorization_grant_type == "client-credentials"
    assert GrantedScopes().get_available_scopes(app) == ["read:api_keys", "verify:api_keys"]
    assert AuditEvent.objects.filter(action="application.created").count() == 1


def test_unknown_scope_is_refused(actor):
    with pytest.raises(exceptions.ValidationFailed):
        services.m2m_application_create(name="Bad", scopes=["root"], actor=actor)
    assert not get_application_model().objects.exists()


def test_set_scopes_replaces_the_grant(actor):
    issued = services.m2m_application_create(name="A", scopes=["read:apis"], actor=actor)
    services.m2m_application_set_scopes(
        application=issued.application, scopes=["create:apis"], actor=actor
    )
    app = get_application_model().objects.get(pk=issued.application.pk)
    assert GrantedScopes().get_default_scopes(app) == ["create:apis"]


def test_createm2mapp_prints_credentials_as_json():
    out = StringIO()
    call_command("createm2mapp", "Reporter", "--scope", "read:api_keys", "--scope", "read:apis", stdout=out)
    data = json.loads(out.getvalue())
    assert set(data) == {"client_id", "client_secret"}
    app = get_application_model().objects.get(client_id=data["client_id"])
    assert app.name == "Reporter"
    assert app.client_secret != data["client_secret"]


@pytest.mark.parametrize("argv", [["NoScope"], ["Bad", "--scope", "nope"]])
def test_createm2mapp_refuses_bad_input(argv):
    with pytest.raises(CommandError):
        call_command("createm2mapp", *argv, stdout=StringIO())
    assert not get_application_model().objects.exists()
