"""Issuing keys in the admin: scopes follow the API (checked by the server), the secret is
shown once in the response to the POST and is nowhere else, ever."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from apikeys.services import Verification
from tests.admin.helpers import admin_url, form_errors, shown_secrets
from tests.factories import ApiFactory, ScopeFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:apikeys_apikey_add")


@pytest.fixture
def foreign_scope():
    """A scope of another API than the ``api`` fixture's."""
    return ScopeFactory(api=ApiFactory(name="Billing API"), key="read:invoices")


def issue_data(
    *, api, scopes=(), organization=None, user=None, name="Backend", expires_at=None
) -> dict[str, Any]:
    return {
        "name": name,
        "api": api.pk,
        "scopes": [s.pk for s in scopes],
        "organization": organization.pk if organization else "",
        "user": user.pk if user else "",
        "expires_at_0": expires_at.strftime("%Y-%m-%d") if expires_at else "",
        "expires_at_1": expires_at.strftime("%H:%M:%S") if expires_at else "",
    }


def pages_after_issue(client, api_key: ApiKey) -> list[Any]:
    """Every admin page on which the key, its owner or its history appears."""
    urls = [
        reverse("admin:apikeys_apikey_changelist"),
        admin_url("apikey_change", api_key.pk),
        admin_url("apikey_history", api_key.pk),
        admin_url("apikey_rotate", api_key.pk),
        admin_url("apikey_revoke", api_key.pk),
        reverse("admin:apikeys_auditevent_changelist"),
        reverse("admin:index"),
    ]
    if api_key.organization_id:
        urls.append(admin_url("organization_change", api_key.organization_id))
    else:
        urls.append(admin_url("user_change", api_key.user_id))
    urls += [
        admin_url("auditevent_change", event.pk)
        for event in AuditEvent.objects.filter(target_id=api_key.id)
    ]
    responses = [client.get(url) for url in urls]
    assert all(r.status_code == HTTPStatus.OK for r in responses), [
        (r.request["PATH_INFO"], r.status_code) for r in responses
    ]
    return responses


def database_text() -> str:
    """Every value of every row of every table, as one string to search."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(" ".join(str(v) for v in row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_add_form_tags_every_scope_with_its_api_and_presets_the_owner(
    admin_client, api, read_users, foreign_scope, organization
):
    response = admin_client.get(f"{ADD_URL}?organization={organization.pk}")
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert f'data-api="{api.id}"' in html and f'value="{read_users.pk}"' in html
    assert f'data-api="{foreign_scope.api_id}"' in html
    assert "apikeys/admin/scope_filter.js" in html
    assert f'<option value="{organization.pk}" selected>' in html


def test_issuing_an_organization_key_shows_the_secret_once_with_no_store(
    admin_client, admin_user, api, read_users, write_users, organization
):
    response = admin_client.post(
        ADD_URL, issue_data(api=api, scopes=[read_users], organization=organization)
    )

    assert response.status_code == HTTPStatus.OK
    assert "no-store" in response["Cache-Control"]
    assert next(t.name for t in response.templates) == "admin/apikeys/shown_once.html"
    [secret] = shown_secrets(response)
    result = services.api_key_verify(key=secret, audience=api.audience)
    assert result.code == Verification.VERIFIED
    api_key = ApiKey.objects.get()
    assert result.key_id == api_key.id
    assert result.scopes == ("read:users",)  # the other scope of the API was not chosen
    assert api_key.organization == organization and api_key.user is None
    assert api_key.created_by_user == admin_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.API_KEY_ISSUED)
    assert (event.actor_user, event.actor_type, event.ip) == (admin_user, "user", "127.0.0.1")
    assert event.target_id == api_key.id and event.org_code == organization.code


def test_the_secret_is_never_stored_nor_shown_again(admin_client, api, read_users, organization):
    response = admin_client.post(
        ADD_URL, issue_data(api=api, scopes=[read_users], organization=organization)
    )
    [secret] = shown_secrets(response)
    hidden_part = secret[12:-4]  # what the prefix…suffix display never shows
    api_key = ApiKey.objects.get()

    # Not in the session, the cookies (where messages may live), the admin's own log, or
    # any row of the database.
    assert all(hidden_part not in str(v) for v in admin_client.session.values())
    assert all(hidden_part not in morsel.value for morsel in response.cookies.values())
    assert all(hidden_part not in str(v) for v in LogEntry.objects.values_list())
    assert hidden_part not in database_text()
    # Not on any page afterwards; nor the digest, anywhere.
    for page in pages_after_issue(admin_client, api_key):
        html = page.content.decode()
        assert hidden_part not in html
        assert api_key.digest not in html


def test_the_secret_is_never_logged(admin_client, api, organization, caplog):
    with caplog.at_level(logging.DEBUG):
        response = admin_client.post(ADD_URL, issue_data(api=api, organization=organization))
    [secret] = shown_secrets(response)
    assert secret not in caplog.text and secret[12:-4] not in caplog.text


def test_a_user_key_is_issued_from_the_user_page(admin_client, api, read_users, user):
    page = admin_client.get(admin_url("user_change", user.pk))
    assert f"{ADD_URL}?user={user.pk}" in page.content.decode()

    response = admin_client.post(ADD_URL, issue_data(api=api, scopes=[read_users], user=user))

    [secret] = shown_secrets(response)
    result = services.api_key_verify(key=secret)
    assert result.is_valid and result.user_id == user.public_id and result.org_code is None
    assert ApiKey.objects.get().type == ApiKey.Type.USER


def test_the_organization_page_links_to_add_a_key_for_it(admin_client, organization):
    page = admin_client.get(admin_url("organization_change", organization.pk))
    assert f"{ADD_URL}?organization={organization.pk}" in page.content.decode()


def test_a_scope_of_another_api_is_refused_even_without_the_browser(
    admin_client, api, read_users, foreign_scope, organization
):
    # What a request that bypasses scope_filter.js sends: a real scope, of another API.
    response = admin_client.post(
        ADD_URL, issue_data(api=api, scopes=[read_users, foreign_scope], organization=organization)
    )

    assert response.status_code == HTTPStatus.OK
    assert form_errors(response) == {"scopes": ["SCOPE_NOT_FOUND"]}
    assert shown_secrets(response) == []
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_ISSUED).exists()


@pytest.mark.parametrize(
    "owners, field, code",
    [
        ({}, "__all__", "OWNER_REQUIRED"),
        ({"organization": True, "user": True}, "__all__", "OWNER_AMBIGUOUS"),
    ],
)
def test_a_key_needs_exactly_one_owner(admin_client, api, organization, user, owners, field, code):
    data = issue_data(
        api=api,
        organization=organization if owners.get("organization") else None,
        user=user if owners.get("user") else None,
    )
    response = admin_client.post(ADD_URL, data)
    assert form_errors(response) == {field: [code]}
    assert not ApiKey.objects.exists()


def test_an_expiry_in_the_past_is_refused(admin_client, api, organization):
    data = issue_data(
        api=api, organization=organization, expires_at=timezone.now() - timedelta(days=1)
    )
    response = admin_client.post(ADD_URL, data)
    assert form_errors(response) == {"expires_at": ["EXPIRES_AT_IN_PAST"]}
    assert not ApiKey.objects.exists()


def test_an_expiry_in_the_future_is_kept(admin_client, api, organization):
    when = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = admin_client.post(
        ADD_URL, issue_data(api=api, organization=organization, expires_at=when)
    )
    assert len(shown_secrets(response)) == 1
    assert ApiKey.objects.get().expires_at == when


def test_an_unknown_owner_in_the_link_is_ignored(admin_client, api):
    response = admin_client.get(f"{ADD_URL}?organization=999999&user=abc")
    assert response.status_code == HTTPStatus.OK
    assert response.context["adminform"].form.initial == {}


def test_sending_the_issue_form_again_issues_no_second_key(admin_client, api, organization):
    """A reload of the page that shows the secret re-sends the POST: it must not issue a
    second key (the token handed out with the form works once)."""
    form = admin_client.get(ADD_URL)
    token = re.search(r'name="form_token" value="([^"]+)"', form.content.decode()).group(1)
    data = {**issue_data(api=api, organization=organization), "form_token": token}
    first = admin_client.post(ADD_URL, data)
    assert len(shown_secrets(first)) == 1
    again = admin_client.post(ADD_URL, data)
    assert shown_secrets(again) == []
    assert form_errors(again) == {"__all__": ["ALREADY_SUBMITTED"]}
    assert ApiKey.objects.count() == 1
