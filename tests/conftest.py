"""Shared fixtures. Everything that makes a key goes through the real services."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from apikeys import keycache, services
from apikeys.models import Api, Organization, Scope
from tests.api.conftest import ALL_SCOPES, fetch_token
from tests.factories import ApiFactory, OrganizationFactory, ScopeFactory, UserFactory
from tests.servers import RedisServer

# manage.py reads a developer's .env (what `make run` writes); the subprocesses the tests
# start must see only the environment each test gives them.
os.environ["DOTENV_FILE"] = ""


@pytest.fixture
def actor() -> services.Actor:
    return services.Actor.system()


@pytest.fixture
def api(db) -> Api:
    return ApiFactory(name="Users API", audience="https://users.example.com")


@pytest.fixture
def read_users(api) -> Scope:
    return ScopeFactory(api=api, key="read:users")


@pytest.fixture
def write_users(api) -> Scope:
    return ScopeFactory(api=api, key="write:users")


@pytest.fixture
def organization(db) -> Organization:
    return OrganizationFactory(name="Acme")


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def issued_key(api, read_users, write_users, organization, actor) -> services.IssuedKey:
    """An organization-level key with read:users and write:users."""
    return services.api_key_issue(
        name="Backend",
        api=api,
        scopes=[read_users, write_users],
        organization=organization,
        actor=actor,
    )


@pytest.fixture
def user_key(api, read_users, user, actor) -> services.IssuedKey:
    """A user-level key with read:users."""
    return services.api_key_issue(
        name="Personal", api=api, scopes=["read:users"], user=user, actor=actor
    )


@pytest.fixture
def make_client(db) -> Callable[..., APIClient]:
    """``make_client(["read:api_keys"])``: an APIClient holding a real token of a new M2M
    application granted exactly those scopes."""

    def make(scopes: list[str] | None = None, name: str = "Test service") -> APIClient:
        issued = services.m2m_application_create(
            name=name,
            scopes=ALL_SCOPES if scopes is None else scopes,
            actor=services.Actor.system(),
        )
        response = fetch_token(issued.application.client_id, issued.client_secret)
        assert response.status_code == 200, response.content
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        client.application = issued.application  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def database_path(settings) -> None:
    """Verification on the database alone, as without Redis (a local-memory cache): for the
    tests of that path's own statements, and of rows changed behind the services' back
    (apikeys.keycache's tests cover the Redis path)."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server of the test module's own."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_cache(redis_server: RedisServer, settings: Any) -> Iterator[redis.Redis]:
    """The default cache is that Redis (emptied), so the key cache (apikeys.keycache) is in
    use: verifications are checked and counted there and written back later. Yields a
    client of it."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url(0),
        }
    }
    client = redis.Redis.from_url(redis_server.url(0))
    client.flushdb()
    keycache._process = None
    yield client
    keycache._process = None
