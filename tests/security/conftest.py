"""Fixtures of the security tests: real M2M applications with real tokens, and a small
world of real objects (API, scopes, organization, user, role, keys) made by the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import MANAGEMENT_SCOPES
from tests.servers import cluster  # noqa: F401  (a fixture, for the tests that start servers)

ALL_SCOPES = sorted(MANAGEMENT_SCOPES)


def token_for(scopes: list[str], name: str = "Security test service") -> tuple[Any, str, str]:
    """A new M2M application granted ``scopes``, and an access token fetched for it from
    ``/oauth2/token`` exactly as a service would: (application, client secret, token)."""
    issued = services.m2m_application_create(
        name=name, scopes=scopes, actor=services.Actor.system()
    )
    response = APIClient().post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": issued.application.client_id,
            "client_secret": issued.client_secret,
        },
    )
    assert response.status_code == 200, response.content
    return issued.application, issued.client_secret, response.json()["access_token"]


@pytest.fixture
def m2m_client(db) -> Callable[..., APIClient]:
    """``m2m_client(["read:api_keys"])``: an APIClient with a real token of those scopes."""

    def make(scopes: list[str] | None = None, name: str = "Security test service") -> APIClient:
        application, _secret, token = token_for(ALL_SCOPES if scopes is None else scopes, name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        client.application = application  # type: ignore[attr-defined]
        return client

    return make


@dataclass
class World:
    """Real objects an outsider or a fuzzer can name, and every secret issued for them."""

    api: Any
    scopes: list[Any]
    organization: Any
    user: Any
    role: Any
    foreign_scope: Any = None  # a scope of another API
    keys: list[services.IssuedKey] = field(default_factory=list)

    @property
    def plaintexts(self) -> list[str]:
        return [k.plaintext for k in self.keys]


@pytest.fixture
def world(db) -> World:
    """An API with two scopes (and another API with one), an organization with a member
    holding a role, and an organization-level and a user-level key, all made through the
    services."""
    from tests.factories import UserFactory

    actor = services.Actor.system()
    api = services.api_create(name="Orders", audience="https://orders.example.com", actor=actor)
    scopes = [
        services.scope_create(api=api, key="read:orders", description="Read", actor=actor),
        services.scope_create(api=api, key="write:orders", description="Write", actor=actor),
    ]
    organization = services.organization_create(name="Acme", code=None, actor=actor)
    user = UserFactory()
    role = services.role_create(key="key-admin", name="Key admin", actor=actor)
    services.membership_add(organization=organization, user=user, roles=[role], actor=actor)
    billing = services.api_create(
        name="Billing", audience="https://billing.example.com", actor=actor
    )
    foreign_scope = services.scope_create(api=billing, key="read:invoices", actor=actor)
    result = World(
        api=api,
        scopes=scopes,
        organization=organization,
        user=user,
        role=role,
        foreign_scope=foreign_scope,
    )
    result.keys.append(
        services.api_key_issue(
            name="Backend", api=api, scopes=scopes, organization=organization, actor=actor
        )
    )
    result.keys.append(
        services.api_key_issue(name="Personal", api=api, scopes=scopes[:1], user=user, actor=actor)
    )
    return result
