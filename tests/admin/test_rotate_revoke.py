"""Rotating and revoking keys in the admin, from the detail page and as list actions:
through the services, audited with the admin as actor; new secrets shown once."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from apikeys.services import Verification
from tests.admin.helpers import admin_url, shown_secrets

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:apikeys_apikey_changelist")
Action = AuditEvent.Action


def rotate_url(api_key: ApiKey) -> str:
    return admin_url("apikey_rotate", api_key.pk)


def revoke_url(api_key: ApiKey) -> str:
    return admin_url("apikey_revoke", api_key.pk)


def test_rotating_from_the_detail_page_shows_the_new_secret_once(
    admin_client, admin_user, issued_key
):
    api_key = issued_key.api_key
    detail = admin_client.get(admin_url("apikey_change", api_key.pk))
    assert rotate_url(api_key) in detail.content.decode()
    assert admin_client.get(rotate_url(api_key)).status_code == HTTPStatus.OK

    response = admin_client.post(rotate_url(api_key), {"grace_seconds": "0"})

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    [secret] = shown_secrets(response)
    assert services.api_key_verify(key=secret).key_id == api_key.id
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.INVALID
    event = AuditEvent.objects.get(action=Action.API_KEY_ROTATED)
    assert event.actor_user == admin_user and event.details == {"grace_seconds": 0}
    # Shown once: the detail page afterwards has no trace of it.
    detail = admin_client.get(admin_url("apikey_change", api_key.pk))
    assert secret[12:-4] not in detail.content.decode()


def test_rotating_with_a_grace_period_keeps_the_old_secret_for_a_while(admin_client, issued_key):
    response = admin_client.post(rotate_url(issued_key.api_key), {"grace_seconds": "3600"})

    [secret] = shown_secrets(response)
    assert services.api_key_verify(key=secret).is_valid
    assert services.api_key_verify(key=issued_key.plaintext).is_valid
    assert "3600 seconds" in response.content.decode()


@pytest.mark.parametrize("grace", ["-1", "604801", "soon"])
def test_a_bad_grace_period_changes_nothing(admin_client, issued_key, grace):
    before = ApiKey.objects.values_list("digest", flat=True).get()
    response = admin_client.post(rotate_url(issued_key.api_key), {"grace_seconds": grace})
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["grace_seconds"]
    assert shown_secrets(response) == []
    assert ApiKey.objects.values_list("digest", flat=True).get() == before


def test_a_revoked_key_cannot_be_rotated(admin_client, issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    before = ApiKey.objects.values_list("digest", flat=True).get()

    page = admin_client.get(rotate_url(issued_key.api_key))
    response = admin_client.post(rotate_url(issued_key.api_key), {"grace_seconds": "0"})

    assert page.context["is_revoked"] is True
    assert [e.code for e in response.context["form"].non_field_errors().as_data()] == [
        "API_KEY_REVOKED"
    ]
    assert shown_secrets(response) == []
    assert ApiKey.objects.values_list("digest", flat=True).get() == before
    assert not AuditEvent.objects.filter(action=Action.API_KEY_ROTATED).exists()


def test_revoking_asks_for_confirmation_then_revokes(admin_client, admin_user, issued_key):
    api_key = issued_key.api_key

    confirmation = admin_client.get(revoke_url(api_key))
    assert confirmation.status_code == HTTPStatus.OK
    assert ApiKey.objects.get().status == ApiKey.Status.ACTIVE  # asking changes nothing

    response = admin_client.post(revoke_url(api_key))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == admin_url("apikey_change", api_key.pk)
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.REVOKED
    event = AuditEvent.objects.get(action=Action.API_KEY_REVOKED)
    assert (event.actor_user, event.actor_type) == (admin_user, "user")


def test_rotate_action_asks_for_the_grace_period_then_shows_every_new_secret(
    admin_client, admin_user, issued_key, user_key, actor
):
    revoked = services.api_key_issue(
        name="Old",
        api=issued_key.api_key.api,
        organization=issued_key.api_key.organization,
        actor=actor,
    )
    services.api_key_revoke(api_key=revoked.api_key, actor=actor)
    selected = [issued_key.api_key.pk, user_key.api_key.pk, revoked.api_key.pk]
    digests = dict(ApiKey.objects.values_list("pk", "digest"))

    ask = admin_client.post(LIST_URL, {"action": "rotate_selected", ACTION_CHECKBOX_NAME: selected})
    assert ask.status_code == HTTPStatus.OK
    assert "admin/apikeys/apikey/rotate_selected.html" in [t.name for t in ask.templates]
    assert dict(ApiKey.objects.values_list("pk", "digest")) == digests  # nothing yet

    response = admin_client.post(
        LIST_URL,
        {
            "action": "rotate_selected",
            ACTION_CHECKBOX_NAME: selected,
            "apply": "yes",
            "grace_seconds": "0",
        },
    )

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    secrets = shown_secrets(response)
    assert {services.api_key_verify(key=s).key_id for s in secrets} == {
        issued_key.api_key.pk,
        user_key.api_key.pk,
    }
    assert "Not rotated" in response.content.decode()  # the revoked key, skipped
    events = AuditEvent.objects.filter(action=Action.API_KEY_ROTATED)
    assert sorted(e.target_id for e in events) == sorted(selected[:2])
    assert {e.actor_user for e in events} == {admin_user}


def test_revoke_action_asks_for_confirmation_then_revokes_every_key(
    admin_client, admin_user, issued_key, user_key
):
    selected = [issued_key.api_key.pk, user_key.api_key.pk]

    ask = admin_client.post(LIST_URL, {"action": "revoke_selected", ACTION_CHECKBOX_NAME: selected})
    assert "admin/apikeys/apikey/revoke_selected.html" in [t.name for t in ask.templates]
    assert not ApiKey.objects.filter(status=ApiKey.Status.REVOKED).exists()

    response = admin_client.post(
        LIST_URL, {"action": "revoke_selected", ACTION_CHECKBOX_NAME: selected, "post": "yes"}
    )

    assert response.status_code == HTTPStatus.FOUND
    for issued in (issued_key, user_key):
        assert services.api_key_verify(key=issued.plaintext).code == Verification.REVOKED
    events = AuditEvent.objects.filter(action=Action.API_KEY_REVOKED)
    assert sorted(e.target_id for e in events) == sorted(selected)
    assert {e.actor_user for e in events} == {admin_user}


def test_sending_the_rotate_form_again_does_not_rotate_twice(admin_client, issued_key):
    page = admin_client.get(rotate_url(issued_key.api_key))
    token = re.search(r'name="form_token" value="([^"]+)"', page.content.decode()).group(1)
    first = admin_client.post(
        rotate_url(issued_key.api_key), {"grace_seconds": "0", "form_token": token}
    )
    [secret] = shown_secrets(first)
    again = admin_client.post(
        rotate_url(issued_key.api_key), {"grace_seconds": "0", "form_token": token}
    )
    assert shown_secrets(again) == []
    assert services.api_key_verify(key=secret).is_valid  # the secret just shown still works


def test_the_rotate_page_offers_the_portals_choices_and_a_custom_value(admin_client, issued_key):
    """Issue 14, item 10: the page asked for raw seconds only."""
    page = admin_client.get(rotate_url(issued_key.api_key))
    choices = [value for value, _label in page.context["form"].fields["grace_seconds"].choices]
    assert choices == ["0", "3600", "86400", "604800", "custom"]
    response = admin_client.post(
        rotate_url(issued_key.api_key), {"grace_seconds": "custom", "custom_grace_seconds": "120"}
    )
    assert response.status_code == HTTPStatus.OK
    assert len(shown_secrets(response)) == 1
    event = AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_ROTATED).get()
    assert event.details == {"grace_seconds": 120}


@pytest.mark.parametrize("seconds", ["", "0", "604801", "soon"])
def test_a_bad_custom_grace_period_changes_nothing(admin_client, issued_key, seconds):
    before = ApiKey.objects.values_list("digest", flat=True).get()
    response = admin_client.post(
        rotate_url(issued_key.api_key), {"grace_seconds": "custom", "custom_grace_seconds": seconds}
    )
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors["custom_grace_seconds"]
    assert ApiKey.objects.values_list("digest", flat=True).get() == before
