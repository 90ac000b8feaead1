"""Usage limits in the admin: set when issuing, changed on the key's "Usage limits" page
(through ``api_key_update``: audited, applied at once), shown on the key's page."""

from __future__ import annotations

from http import HTTPStatus

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from tests.admin.helpers import admin_url
from tests.admin.test_issue import ADD_URL, issue_data


def test_a_key_is_issued_with_limits(admin_client, api, organization):
    data = {
        **issue_data(api=api, organization=organization),
        "ratelimit_limit": "10",
        "ratelimit_duration": "60",
        "credits_remaining": "100",
        "credits_refill_interval": "monthly",
        "credits_refill_amount": "100",
    }
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == HTTPStatus.OK
    key = ApiKey.objects.get()
    assert (key.ratelimit_limit, key.ratelimit_duration) == (10, 60)
    assert (key.credits_remaining, key.credits_refill_interval, key.credits_refill_amount) == (
        100,
        "monthly",
        100,
    )


def test_a_half_given_rate_limit_is_a_form_error(admin_client, api, organization):
    data = {**issue_data(api=api, organization=organization), "ratelimit_limit": "10"}
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == HTTPStatus.OK
    assert "ratelimit_duration" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_limits_are_changed_on_their_page_audited_and_applied(admin_client, issued_key):
    key = issued_key.api_key
    url = admin_url("apikey_limits", key.pk)
    assert url in admin_client.get(admin_url("apikey_change", key.pk)).content.decode()
    assert admin_client.get(url).status_code == HTTPStatus.OK

    response = admin_client.post(url, {"credits_remaining": "1"})

    assert response.status_code == HTTPStatus.FOUND
    assert services.api_key_verify(key=issued_key.plaintext).credits_remaining == 0
    assert services.api_key_verify(key=issued_key.plaintext).code == "API_KEY_USAGE_EXCEEDED"
    assert AuditEvent.objects.filter(action="api_key.updated", target_id=key.pk).exists()
    page = admin_client.get(admin_url("apikey_change", key.pk)).content.decode()
    assert "0 left" in page

    admin_client.post(url, {})  # every field empty: no limits
    assert services.api_key_verify(key=issued_key.plaintext).is_valid


def test_limits_of_a_revoked_key_cannot_be_changed(admin_client, issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    url = admin_url("apikey_limits", issued_key.api_key.pk)
    response = admin_client.post(url, {"credits_remaining": "1"})
    assert response.status_code == HTTPStatus.OK
    assert ApiKey.objects.get().credits_remaining is None
