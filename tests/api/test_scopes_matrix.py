"""Every operation needs its scope: a token without it gets 403 naming it, a token with
only it gets through, and a refused call changes nothing."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from tests.api.conftest import ALL_SCOPES, error_codes

pytestmark = pytest.mark.django_db

# (method, path template, scopes that allow it)
OPERATIONS = [
    ("get", "/api/v1/api_keys", ["read:api_keys"]),
    ("post", "/api/v1/api_keys", ["create:api_keys"]),
    ("get", "/api/v1/api_keys/{key_id}", ["read:api_keys"]),
    ("put", "/api/v1/api_keys/{key_id}", ["update:api_keys"]),
    ("delete", "/api/v1/api_keys/{key_id}", ["delete:api_keys"]),
    ("post", "/api/v1/api_keys/verify", ["verify:api_keys", "read:api_keys"]),
    ("post", "/api/v1/api_keys/leaks", ["report:api_key_leaks"]),
    ("get", "/api/v1/apis", ["read:apis"]),
    ("post", "/api/v1/apis", ["create:apis"]),
    ("get", "/api/v1/apis/{api_id}", ["read:apis"]),
    ("delete", "/api/v1/apis/{api_id}", ["delete:apis"]),
    ("get", "/api/v1/apis/{api_id}/scopes", ["read:api_scopes"]),
    ("post", "/api/v1/apis/{api_id}/scopes", ["create:api_scopes"]),
    ("get", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["read:api_scopes"]),
    ("patch", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["update:api_scopes"]),
    ("delete", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["delete:api_scopes"]),
    ("post", "/api/v1/organization", ["create:organizations"]),
    ("get", "/api/v1/organization?code={org_code}", ["read:organizations"]),
    ("patch", "/api/v1/organization/{org_code}", ["update:organizations"]),
    ("get", "/api/v1/organizations", ["read:organizations"]),
    ("get", "/api/v1/organizations/{org_code}/users", ["read:organizations"]),
    ("post", "/api/v1/organizations/{org_code}/users", ["update:organizations"]),
    ("get", "/api/v1/organizations/{org_code}/api_key_policy", ["read:organizations"]),
    ("put", "/api/v1/organizations/{org_code}/api_key_policy", ["update:organizations"]),
    ("post", "/api/v1/user", ["create:users"]),
    ("get", "/api/v1/user?id={user_id}", ["read:users"]),
    ("get", "/api/v1/users", ["read:users"]),
    ("get", "/api/v1/roles", ["read:roles"]),
    ("post", "/api/v1/roles", ["create:roles"]),
    ("patch", "/api/v1/roles/{role_id}/system_permissions", ["update:roles"]),
    ("get", "/api/v1/system_permissions", ["read:roles"]),
    ("post", "/api/v1/portal/generate_url", ["create:portal_links"]),
    ("get", "/api/v1/webhooks", ["read:webhooks"]),
    ("post", "/api/v1/webhooks", ["create:webhooks"]),
    ("get", "/api/v1/webhooks/{webhook_id}", ["read:webhooks"]),
    ("patch", "/api/v1/webhooks/{webhook_id}", ["update:webhooks"]),
    ("delete", "/api/v1/webhooks/{webhook_id}", ["delete:webhooks"]),
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries", ["read:webhooks"]),
]


@pytest.fixture
def ids(issued_key, api, read_users, organization, user):
    role = services.role_create(key="viewer", name="Viewer", actor=services.Actor.system())
    return {
        "key_id": issued_key.api_key.id,
        "api_id": api.id,
        "scope_id": read_users.id,
        "org_code": organization.code,
        "user_id": user.public_id,
        "role_id": role.id,
        "webhook_id": services.webhook_create(
            endpoint_url="https://93.184.215.14/hooks",
            event_types=["api_key.created"],
            actor=services.Actor.system(),
        ).webhook.id,
    }


@pytest.mark.parametrize(
    "method, template, allowed", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_missing_scope_is_403_naming_it_and_changes_nothing(
    make_client, ids, method, template, allowed
):
    client = make_client([s for s in ALL_SCOPES if s not in allowed])
    keys_before = list(ApiKey.objects.values_list("id", "status", "digest"))
    events_before = AuditEvent.objects.count()
    response = getattr(client, method)(template.format(**ids), {}, format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN, response.content
    assert error_codes(response) == ["INSUFFICIENT_SCOPE"]
    assert all(scope in response.json()["errors"][0]["message"] for scope in allowed)
    assert list(ApiKey.objects.values_list("id", "status", "digest")) == keys_before
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize(
    "method, template, allowed", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_the_scope_alone_is_enough_to_pass_the_gate(make_client, ids, method, template, allowed):
    client = make_client([allowed[0]])
    response = getattr(client, method)(template.format(**ids), {}, format="json")
    assert response.status_code not in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN), (
        response.content
    )


@pytest.mark.parametrize(
    "method, template, allowed", OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS]
)
def test_no_token_is_401(client, ids, method, template, allowed):
    response = getattr(client, method)(template.format(**ids), {}, content_type="application/json")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["UNAUTHENTICATED"]
