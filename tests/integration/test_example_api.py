"""The project's example protected API (``/example/users``) reproduces the server side of
Kinde's API-keys quick start, through the project's own URLs and settings."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apikeys import services

pytestmark = pytest.mark.django_db

URL = "/example/users"


@pytest.fixture
def write_only_key(api, write_users, organization, actor) -> services.IssuedKey:
    return services.api_key_issue(
        name="Writer", api=api, scopes=[write_users], organization=organization, actor=actor
    )


def call(key: str | None = None):
    headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key is not None else {}
    return APIClient().get(URL, **headers)


def only_error(response) -> dict[str, str]:
    (error,) = response.json()["errors"]
    return error


def test_the_example_is_routed_in_the_project():
    assert reverse("example:users") == URL


@pytest.mark.parametrize(
    "key, code",
    [(None, "API_KEY_MISSING"), ("k_live_not-a-real-key", "API_KEY_INVALID")],
    ids=["missing", "invalid"],
)
def test_a_missing_or_invalid_key_is_401_invalid_api_key(key, code):
    response = call(key)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert only_error(response) == {"code": code, "message": "Invalid API key"}
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_a_revoked_key_is_401(issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)

    response = call(issued_key.plaintext)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert only_error(response)["code"] == "API_KEY_REVOKED"


def test_a_valid_key_without_read_users_is_403_insufficient_scope(write_only_key):
    response = call(write_only_key.plaintext)

    assert response.status_code == HTTPStatus.FORBIDDEN
    error = only_error(response)
    assert error["code"] == "INSUFFICIENT_SCOPE"
    assert error["message"].startswith("Insufficient scope")
    assert "read:users" in error["message"]


def test_a_key_with_read_users_gets_the_data_and_what_the_key_proved(user_key, user):
    response = call(user_key.plaintext)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert [u["name"] for u in body["users"]] == ["Ada Lovelace", "Grace Hopper"]
    assert body["api_key"] == {
        "key_id": user_key.api_key.id,
        "org_code": None,
        "user_id": user.public_id,
        "scopes": ["read:users"],
    }


def test_the_example_answers_json_even_to_a_browser():
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = APIClient().get(URL, HTTP_ACCEPT=browser_accept)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["Content-Type"] == "application/json"
