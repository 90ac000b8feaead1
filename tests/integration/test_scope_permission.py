"""``HasScopes`` through real DRF requests: scopes given to it or declared on the view, the
403 naming what is missing, composition with DRF's operators, and misconfiguration."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from apikeys import services
from apikeys.permissions import HasRequiredScopes, HasScopes

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integration.urls")]


@pytest.fixture
def write_only_key(api, write_users, organization, actor) -> services.IssuedKey:
    """An organization key with write:users but not read:users."""
    return services.api_key_issue(
        name="Writer", api=api, scopes=[write_users], organization=organization, actor=actor
    )


def get(path: str, key: str):
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def only_error(response) -> dict[str, str]:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


def test_a_key_without_the_required_scope_gets_403_naming_it(write_only_key):
    response = get("/whoami", write_only_key.plaintext)

    assert response.status_code == HTTPStatus.FORBIDDEN
    error = only_error(response)
    assert error["code"] == "INSUFFICIENT_SCOPE"
    assert "read:users" in error["message"]


def test_the_403_names_only_the_scopes_that_are_missing(user_key):
    # user_key carries read:users only; the view needs read:users and write:users.
    response = get("/both-scopes", user_key.plaintext)

    assert response.status_code == HTTPStatus.FORBIDDEN
    error = only_error(response)
    assert error["code"] == "INSUFFICIENT_SCOPE"
    assert "write:users" in error["message"]
    assert "read:users" not in error["message"]


def test_a_key_with_every_required_scope_passes(issued_key):
    assert get("/both-scopes", issued_key.plaintext).status_code == HTTPStatus.OK


def test_scopes_declared_on_the_view_are_required(issued_key, user_key):
    assert get("/declared-scopes", issued_key.plaintext).status_code == HTTPStatus.OK

    refused = get("/declared-scopes", user_key.plaintext)
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert only_error(refused)["code"] == "INSUFFICIENT_SCOPE"
    assert "write:users" in only_error(refused)["message"]


def test_either_side_of_an_or_may_grant_access(user_key, write_only_key):
    assert get("/either-scope", user_key.plaintext).status_code == HTTPStatus.OK
    assert get("/either-scope", write_only_key.plaintext).status_code == HTTPStatus.FORBIDDEN


def test_is_authenticated_and_has_scopes_admit_an_organization_key(issued_key, write_only_key):
    assert get("/authenticated-and-scope", issued_key.plaintext).status_code == HTTPStatus.OK
    assert (
        get("/authenticated-and-scope", write_only_key.plaintext).status_code
        == HTTPStatus.FORBIDDEN
    )


def test_a_signed_in_session_without_an_api_key_is_refused(user, issued_key):
    client = APIClient()
    client.force_login(user)

    response = client.get("/key-or-session")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert only_error(response)["code"] == "API_KEY_REQUIRED"


def test_has_scopes_makes_a_permission_class_that_carries_its_scopes():
    permission = HasScopes("read:users", "write:users")

    assert isinstance(permission, type) and issubclass(permission, BasePermission)
    assert permission().get_required_scopes(view=object()) == ("read:users", "write:users")


@pytest.mark.parametrize(
    "scopes",
    [(), ("",), (" read:users",), (None,)],
    ids=["none", "empty", "padded", "not-a-string"],
)
def test_blank_or_odd_scope_names_are_refused_when_the_view_is_defined(scopes):
    with pytest.raises(ImproperlyConfigured):
        HasScopes(*scopes)


class _ViewWithout:
    pass


class _ViewWithString:
    required_scopes = "read:users"


@pytest.mark.parametrize("view", [_ViewWithout(), _ViewWithString()], ids=["none", "string"])
def test_a_view_without_a_list_of_scopes_is_a_configuration_error(view):
    with pytest.raises(ImproperlyConfigured):
        HasRequiredScopes().get_required_scopes(view)
