"""APIs and their scopes in the admin: created, described and deleted through the services;
audiences unique, scope keys valid, nothing in use removed."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from apikeys.models import Api, AuditEvent, Scope
from tests.admin.helpers import admin_url
from tests.factories import ApiFactory

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


def scope_rows(*rows: dict[str, Any], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "scopes-TOTAL_FORMS": str(len(rows)),
        "scopes-INITIAL_FORMS": str(initial),
        "scopes-MIN_NUM_FORMS": "0",
        "scopes-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data.update({f"scopes-{i}-{name}": value for name, value in row.items()})
    return data


def test_an_api_is_created_with_its_scopes_through_the_services(admin_client, admin_user):
    response = admin_client.post(
        admin_url("api_add"),
        {
            "name": "Orders API",
            "audience": "https://orders.example.com",
            **scope_rows(
                {"key": "read:orders", "description": "Read orders"},
                {"key": "write:orders", "description": ""},
                {"key": "", "description": ""},  # an untouched extra row
            ),
        },
    )

    assert response.status_code == HTTPStatus.FOUND
    api = Api.objects.get(audience="https://orders.example.com")
    assert sorted(api.scopes.values_list("key", flat=True)) == ["read:orders", "write:orders"]
    assert AuditEvent.objects.filter(action=Action.API_CREATED, target_id=api.id).count() == 1
    created = AuditEvent.objects.filter(action=Action.SCOPE_CREATED)
    assert sorted(e.details["key"] for e in created) == ["read:orders", "write:orders"]
    assert {e.actor_user for e in AuditEvent.objects.all()} == {admin_user}


@pytest.mark.parametrize(
    "data, field",
    [
        ({"audience": "https://users.example.com"}, "audience"),  # the api fixture's
        ({"audience": "x" * 65}, "audience"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_api_is_refused(admin_client, api, data, field):
    response = admin_client.post(
        admin_url("api_add"),
        {"name": "Another", "audience": "https://another.example.com", **data, **scope_rows()},
    )
    assert response.status_code == HTTPStatus.OK
    assert field in response.context["adminform"].form.errors
    assert Api.objects.count() == 1
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("key", ["read users", "", "x" * 65])
def test_a_bad_scope_key_is_refused(admin_client, key):
    response = admin_client.post(
        admin_url("api_add"),
        {
            "name": "Orders",
            "audience": "https://orders.example.com",
            **scope_rows({"key": key, "description": "d"}),
        },
    )
    assert response.status_code == HTTPStatus.OK
    assert response.context["inline_admin_formsets"][0].formset.errors[0]["key"]
    assert not Api.objects.exists()


def test_a_duplicate_scope_key_in_one_api_is_refused(admin_client, api, read_users):
    response = admin_client.post(
        admin_url("api_change", api.pk),
        scope_rows(
            {"id": read_users.pk, "description": "Read users"},
            {"key": "read:users", "description": ""},
            initial=1,
        ),
    )
    assert response.status_code == HTTPStatus.OK
    assert Scope.objects.filter(api=api).count() == 1


def test_a_scope_description_changes_but_its_key_does_not(
    admin_client, admin_user, api, read_users
):
    response = admin_client.post(
        admin_url("api_change", api.pk),
        scope_rows(
            {"id": read_users.pk, "key": "renamed:users", "description": "Read all users"},
            initial=1,
        ),
    )
    assert response.status_code == HTTPStatus.FOUND
    read_users.refresh_from_db()
    assert (read_users.key, read_users.description) == ("read:users", "Read all users")
    [event] = AuditEvent.objects.filter(action=Action.SCOPE_UPDATED)
    assert event.actor_user == admin_user and event.details["description"] == "Read all users"


def test_the_api_itself_is_read_only_once_created(admin_client, api):
    admin_client.post(
        admin_url("api_change", api.pk),
        {"name": "Renamed", "audience": "https://elsewhere.example.com", **scope_rows()},
    )
    api.refresh_from_db()
    assert (api.name, api.audience) == ("Users API", "https://users.example.com")


def test_a_scope_that_active_keys_use_is_not_deleted(admin_client, issued_key, api, read_users):
    response = admin_client.post(
        admin_url("api_change", api.pk),
        scope_rows({"id": read_users.pk, "description": "changed too", "DELETE": "on"}, initial=1),
        follow=True,
    )
    assert Scope.objects.filter(pk=read_users.pk, description="A scope").exists()  # all rolled back
    assert not AuditEvent.objects.filter(
        action__in=[Action.SCOPE_DELETED, Action.SCOPE_UPDATED]
    ).exists()
    assert "SCOPE_IN_USE" in " ".join(str(m) for m in response.context["messages"])


def test_an_unused_scope_is_deleted_through_the_service(admin_client, admin_user, api, read_users):
    response = admin_client.post(
        admin_url("api_change", api.pk),
        scope_rows({"id": read_users.pk, "description": "A scope", "DELETE": "on"}, initial=1),
    )
    assert response.status_code == HTTPStatus.FOUND
    assert not Scope.objects.filter(pk=read_users.pk).exists()
    [event] = AuditEvent.objects.filter(action=Action.SCOPE_DELETED)
    assert event.actor_user == admin_user


def test_an_api_in_use_is_not_deleted_but_an_unused_one_is(
    admin_client, admin_user, issued_key, api
):
    refused = admin_client.post(admin_url("api_delete", api.pk), {"post": "yes"}, follow=True)
    assert Api.objects.filter(pk=api.pk).exists()
    assert "API_IN_USE" in " ".join(str(m) for m in refused.context["messages"])

    unused = ApiFactory()
    response = admin_client.post(admin_url("api_delete", unused.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Api.objects.filter(pk=unused.pk).exists()
    [event] = AuditEvent.objects.filter(action=Action.API_DELETED)
    assert event.actor_user == admin_user and event.target_id == unused.pk
