"""M2M applications: creation, grants, disabling, a new secret, the client-secret hasher,
the management command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model

from apikeys import exceptions, services
from apikeys.hashers import ClientSecretHasher
from apikeys.models import AuditEvent, M2MGrant
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
    call_command(
        "createm2mapp", "Reporter", "--scope", "read:api_keys", "--scope", "read:apis", stdout=out
    )
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


def test_createm2mapp_stores_the_secret_with_the_keyed_digest():
    out = StringIO()
    call_command("createm2mapp", "Reporter", "--scope", "read:apis", stdout=out)
    data = json.loads(out.getvalue())
    stored = get_application_model().objects.get(client_id=data["client_id"]).client_secret
    assert identify_hasher(stored).algorithm == "apikeys_client_hmac"
    assert ClientSecretHasher().verify(data["client_secret"], stored)


def test_disable_and_enable_are_audited_once_each_and_idempotent(actor):
    issued = services.m2m_application_create(name="A", scopes=["read:apis"], actor=actor)
    for _ in range(2):
        services.m2m_application_disable(application=issued.application, actor=actor)
    assert not M2MGrant.objects.get().is_active
    for _ in range(2):
        services.m2m_application_enable(application=issued.application, actor=actor)
    assert M2MGrant.objects.get().is_active
    actions = list(
        AuditEvent.objects.exclude(action="application.created")
        .order_by("pk")
        .values_list("action", "target_id")
    )
    client_id = issued.application.client_id
    assert actions == [("application.disabled", client_id), ("application.enabled", client_id)]


def test_regenerating_a_secret_is_audited_and_its_plaintext_only_returned(actor):
    issued = services.m2m_application_create(name="A", scopes=["read:apis"], actor=actor)

    renewed = services.m2m_application_regenerate_secret(
        application=issued.application, actor=actor
    )

    stored = get_application_model().objects.get(pk=issued.application.pk).client_secret
    assert ClientSecretHasher().verify(renewed.client_secret, stored)
    assert not ClientSecretHasher().verify(issued.client_secret, stored)
    assert renewed.client_secret not in repr(renewed)
    [event] = AuditEvent.objects.filter(action="application.secret_regenerated")
    assert renewed.client_secret not in str(event.details) and stored not in str(event.details)


def test_the_client_secret_hasher_is_a_keyed_digest_never_the_password_default(settings):
    hasher = ClientSecretHasher()
    encoded = make_password("s3cret", hasher="apikeys_client_hmac")
    assert encoded.startswith("apikeys_client_hmac$") and "s3cret" not in encoded
    assert hasher.verify("s3cret", encoded) and not hasher.verify("s3cret!", encoded)
    assert check_password("s3cret", encoded)
    # Keyed: another hashing secret gives another digest.
    settings.APIKEYS = {
        **settings.APIKEYS,
        "HASHING_SECRET": "another-hashing-secret-of-32-chars-or-more",
    }
    assert not hasher.verify("s3cret", encoded)
    # Never the default: user passwords stay with the first hasher (Argon2).
    assert identify_hasher(make_password("a password")).algorithm == "argon2"


def test_without_a_hashing_secret_no_client_secret_is_hashed(settings):
    settings.APIKEYS = {**settings.APIKEYS, "HASHING_SECRET": ""}
    with pytest.raises(ImproperlyConfigured, match="HASHING_SECRET"):
        make_password("s3cret", hasher="apikeys_client_hmac")


def test_a_missing_client_secret_is_refused_rather_than_hashed_as_the_text_none():
    with pytest.raises(TypeError):
        ClientSecretHasher().encode(None)  # type: ignore[arg-type]


def test_the_hashers_summary_names_the_algorithm_and_masks_the_digest():
    hasher = ClientSecretHasher()
    encoded = hasher.encode("s3cret")
    digest = encoded.split("$", 1)[1]
    assert hasher.decode(encoded) == {
        "algorithm": "apikeys_client_hmac",
        "hash": digest,
        "salt": "",
    }
    summary = hasher.safe_summary(encoded)
    assert summary["algorithm"] == "apikeys_client_hmac"
    assert summary["hash"].startswith(digest[:6]) and digest not in summary["hash"]


def test_a_stored_client_secret_is_never_due_for_rehashing():
    """No work factor to raise: checked against its own hasher, a right secret is never
    re-encoded (Django calls the setter only when the hasher says the hash is out of date)."""
    encoded = make_password("s3cret", hasher="apikeys_client_hmac")
    rehashed: list[str] = []
    assert check_password(
        "s3cret", encoded, setter=rehashed.append, preferred="apikeys_client_hmac"
    )
    assert rehashed == []


def test_the_hasher_states_that_it_needs_no_runtime_hardening(recwarn):
    """Django's base hasher warns when a subclass leaves harden_runtime out; this hasher has
    no work factor to even out, so it provides a harden_runtime that does nothing."""
    assert ClientSecretHasher().harden_runtime("s3cret", "apikeys_client_hmac$00") is None
    assert not [w for w in recwarn if "harden_runtime" in str(w.message)]
