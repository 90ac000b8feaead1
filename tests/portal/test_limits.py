"""Usage limits in the portal: set when creating a key, changed on the key's "Usage
limits" page by owners with write access only; a reader sees them and cannot change them."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from tests.portal.helpers import grant_form_token, issue


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_key_is_created_with_limits(signed_in, user, api):
    response = signed_in.post(
        "/portal/keys/new/",
        {
            "name": "Limited",
            "api": api.pk,
            "ratelimit_limit": "5",
            "ratelimit_duration": "60",
            "credits_remaining": "10",
            "credits_refill_interval": "daily",
            "credits_refill_amount": "10",
            "form_token": grant_form_token(signed_in),
        },
    )
    assert response.status_code == HTTPStatus.OK
    key = ApiKey.objects.get()
    assert (key.ratelimit_limit, key.credits_remaining, key.credits_refill_interval) == (
        5,
        10,
        "daily",
    )


@pytest.mark.django_db
def test_a_refill_without_credits_is_a_form_error(signed_in, api):
    response = signed_in.post(
        "/portal/keys/new/",
        {
            "name": "Limited",
            "api": api.pk,
            "credits_refill_interval": "daily",
            "credits_refill_amount": "10",
            "form_token": grant_form_token(signed_in),
        },
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "credits_remaining" in response.context["form"].errors
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_the_owner_changes_limits_and_they_apply_at_once(signed_in, user, api):
    issued = issue(api=api, user=user)
    url = f"/portal/keys/{issued.api_key.id}/limits/"
    detail = signed_in.get(f"/portal/keys/{issued.api_key.id}/")
    assert url in detail.content.decode()
    assert signed_in.get(url).status_code == HTTPStatus.OK

    response = signed_in.post(url, {"credits_remaining": "1"})

    assert response.status_code == HTTPStatus.FOUND
    assert services.api_key_verify(key=issued.plaintext).credits_remaining == 0
    assert AuditEvent.objects.filter(action="api_key.updated").exists()
    assert "0 left" in signed_in.get(f"/portal/keys/{issued.api_key.id}/").content.decode()


@pytest.mark.django_db
def test_a_reader_cannot_change_an_organizations_key_limits(client, reader, acme, api):
    issued = issue(api=api, organization=acme)
    client.force_login(reader)
    url = f"/portal/keys/{issued.api_key.id}/limits/"
    assert client.get(url).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url, {"credits_remaining": "1"}).status_code == HTTPStatus.FORBIDDEN
    assert ApiKey.objects.get().credits_remaining is None


@pytest.mark.django_db
def test_another_users_key_is_not_found(client, api, user, django_user_model):
    issued = issue(api=api, user=user)
    stranger = django_user_model.objects.create_user("stranger", "s@example.com", "pw-12345678")
    client.force_login(stranger)
    url = f"/portal/keys/{issued.api_key.id}/limits/"
    assert client.post(url, {"credits_remaining": "1"}).status_code == HTTPStatus.NOT_FOUND
    assert ApiKey.objects.get().credits_remaining is None
