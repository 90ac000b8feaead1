"""The M2M token cache (``apikeys.tokencache``): a token this worker accepted costs no query,
every change to its application is honoured on the next request, every refusal is
django-oauth-toolkit's own answer, and Redis failing or forgetting never makes it lie.

These tests run against Redis whatever ``CACHE_URL`` says: the default cache's Redis when
it is one (the PostgreSQL + Redis pass), else a throwaway redis-server (tests/servers.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from apikeys import redisconn, services, tokencache
from apikeys.models import AuditEvent
from tests.api.conftest import error_codes, fetch_token
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.django_db

INVALID = (
    'Bearer realm="api",error="invalid_token",error_description="The access token is invalid."'
)
EXPIRED = (
    'Bearer realm="api",error="invalid_token",error_description="The access token has expired."'
)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    configured = django_settings.CACHES["default"]
    if "redis" in configured["BACKEND"].lower():
        yield str(configured["LOCATION"])
        return
    server = RedisServer()
    server.start()
    try:
        yield server.url(0)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def with_redis(settings, redis_url: str) -> Iterator[None]:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
        }
    }
    tokencache.get().clear()
    yield
    tokencache.get().clear()


@pytest.fixture
def app() -> services.IssuedApplication:
    return services.m2m_application_create(
        name="Svc",
        scopes=["read:api_keys", "create:apis", "read:apis"],
        actor=services.Actor.system(),
    )


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def new_token(app: services.IssuedApplication) -> str:
    response = fetch_token(app.application.client_id, app.client_secret)
    assert response.status_code == HTTPStatus.OK, response.content
    return str(response.json()["access_token"])


@pytest.fixture
def warm(app) -> tuple[str, APIClient]:
    """A token of ``app`` that this worker has accepted once (so it is cached)."""
    token = new_token(app)
    client = bearer(token)
    assert client.get("/api/v1/apis").status_code == HTTPStatus.OK
    return token, client


def token_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "oauth2_provider" in q["sql"]]


def get_apis(client: APIClient) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/apis")
    return response, token_queries(queries)


# --------------------------------------------------------------------------- the fast path


def test_a_seen_token_is_checked_without_a_query(warm, django_assert_num_queries):
    _token, client = warm
    with django_assert_num_queries(1):  # the page of APIs, nothing for the token
        assert client.get("/api/v1/apis").status_code == HTTPStatus.OK


def test_the_first_request_of_a_token_takes_the_database_path(app):
    response, queries = get_apis(bearer(new_token(app)))
    assert response.status_code == HTTPStatus.OK
    assert len(queries) == 1


def test_a_write_with_a_cached_token_names_its_application_in_the_audit(app, warm):
    _token, client = warm
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/v1/apis", {"name": "Orders", "audience": "https://o.example"}, format="json"
        )
    assert response.status_code == HTTPStatus.CREATED, response.content
    assert token_queries(queries) == []
    event = AuditEvent.objects.get(action="api.created")
    assert event.actor_application_id == app.application.pk
    assert event.actor_label == "Svc"


def test_a_renamed_application_is_named_so_from_the_next_request(app, warm):
    _token, client = warm
    services.m2m_application_update(
        application=app.application, name="Renamed", actor=services.Actor.system()
    )
    client.post("/api/v1/apis", {"name": "Orders", "audience": "https://o.example"}, format="json")
    assert AuditEvent.objects.get(action="api.created").actor_label == "Renamed"


# --------------------------------------------------------------------------- invalidation


def test_a_disabled_application_is_refused_on_the_next_request_and_back_when_enabled(app, warm):
    _token, client = warm
    services.m2m_application_disable(application=app.application, actor=services.Actor.system())
    refused = client.get("/api/v1/apis")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused["WWW-Authenticate"] == INVALID
    services.m2m_application_enable(application=app.application, actor=services.Actor.system())
    assert client.get("/api/v1/apis").status_code == HTTPStatus.OK


def test_a_deleted_application_is_refused_on_the_next_request(app, warm):
    _token, client = warm
    services.m2m_application_delete(application=app.application, actor=services.Actor.system())
    refused = client.get("/api/v1/apis")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused["WWW-Authenticate"] == INVALID


def test_a_new_secret_ends_the_cached_tokens(app, warm):
    _token, client = warm
    services.m2m_application_regenerate_secret(
        application=app.application, actor=services.Actor.system()
    )
    assert client.get("/api/v1/apis").status_code == HTTPStatus.UNAUTHORIZED


def test_a_narrowed_grant_applies_on_the_next_request(app, warm):
    _token, client = warm
    services.m2m_application_set_scopes(
        application=app.application, scopes=["read:api_keys"], actor=services.Actor.system()
    )
    narrowed = client.get("/api/v1/apis")
    assert narrowed.status_code == HTTPStatus.FORBIDDEN
    assert error_codes(narrowed) == ["INSUFFICIENT_SCOPE"]
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.OK


def test_a_deleted_token_is_refused_on_the_next_request(warm):
    token, client = warm
    AccessToken.objects.get(token_checksum=tokencache_checksum(token)).delete()
    refused = client.get("/api/v1/apis")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused["WWW-Authenticate"] == INVALID


def tokencache_checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_an_expired_token_is_refused_by_its_cached_expiry(warm, monkeypatch):
    token, client = warm
    # The database says expired, but nothing told the cache: it still accepts (the proof
    # that the next check is the cache's own)...
    AccessToken.objects.filter(token_checksum=tokencache_checksum(token)).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/api/v1/apis").status_code == HTTPStatus.OK
    # ...until its own clock passes the expiry it holds.
    later = tokencache.time.time() + 2 * 3600
    monkeypatch.setattr(tokencache.time, "time", lambda: later)
    refused = client.get("/api/v1/apis")
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused["WWW-Authenticate"] == EXPIRED


def test_an_entry_filled_across_an_invalidation_is_not_kept(app):
    token = new_token(app)
    checksum = tokencache_checksum(token)
    cache = tokencache.get()
    snapshot = cache.fill_snapshot()
    assert snapshot is not None
    loaded = AccessToken.objects.select_related("application").get(token_checksum=checksum)
    # A change commits (and bumps) between the database read and the store.
    tokencache.invalidate_application(app.application.pk)
    cache.store(checksum, loaded, snapshot)
    assert cache.lookup(checksum) is None
    # The same fill without a change in between is kept.
    snapshot = cache.fill_snapshot()
    assert snapshot is not None
    cache.store(checksum, loaded, snapshot)
    assert cache.lookup(checksum) is not None


def test_an_entry_older_than_the_setting_is_checked_again(settings, warm):
    _token, client = warm
    settings.APIKEYS = {**settings.APIKEYS, "M2M_TOKEN_CACHE_SECONDS": 1}
    entries = tokencache.get()._entries
    for checksum, entry in list(entries.items()):
        entries[checksum] = dataclasses.replace(entry, stored_at=entry.stored_at - 2)
    _response, queries = get_apis(client)
    assert len(queries) == 1


# --------------------------------------------------------------------------- Redis failing


def test_redis_losing_its_memory_sends_every_token_back_to_the_database(warm):
    _token, client = warm
    assert redisconn.client() is not None
    redisconn.client().delete(tokencache.epoch_key())  # what a restart without data leaves
    response, queries = get_apis(client)
    assert response.status_code == HTTPStatus.OK
    assert len(queries) == 1
    response, queries = get_apis(client)
    assert (response.status_code, queries) == (HTTPStatus.OK, [])


def test_redis_down_falls_back_to_the_database_and_comes_back_by_itself(warm, monkeypatch):
    _token, client = warm
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    monkeypatch.setattr(redisconn, "client", lambda: dead)
    monkeypatch.setattr(redisconn, "line", lambda: redisconn.Line(dead))
    for _ in range(2):
        response, queries = get_apis(client)
        assert response.status_code == HTTPStatus.OK
        assert len(queries) == 1
    monkeypatch.undo()
    tokencache.get()._retry_at = 0.0  # RETRY_SECONDS have passed
    response, queries = get_apis(client)  # fills again
    assert (response.status_code, len(queries)) == (HTTPStatus.OK, 1)
    response, queries = get_apis(client)
    assert (response.status_code, queries) == (HTTPStatus.OK, [])


def test_without_redis_nothing_is_cached(settings, app):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert not tokencache.enabled()
    client = bearer(new_token(app))
    for _ in range(2):
        response, queries = get_apis(client)
        assert (response.status_code, len(queries)) == (HTTPStatus.OK, 1)
    assert tokencache.get()._entries == {}


def test_the_setting_at_zero_switches_the_cache_off(settings, app):
    settings.APIKEYS = {**settings.APIKEYS, "M2M_TOKEN_CACHE_SECONDS": 0}
    client = bearer(new_token(app))
    for _ in range(2):
        _response, queries = get_apis(client)
        assert len(queries) == 1


# --------------------------------------------------------------------------- same answers


REQUESTS: list[tuple[str, Callable[[str], dict[str, str]], str]] = [
    ("no header", lambda token: {}, "/api/v1/apis"),
    ("basic", lambda token: {"HTTP_AUTHORIZATION": f"Basic {token}"}, "/api/v1/apis"),
    ("bearer alone", lambda token: {"HTTP_AUTHORIZATION": "Bearer"}, "/api/v1/apis"),
    ("three parts", lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token} x"}, "/api/v1/apis"),
    ("unknown", lambda token: {"HTTP_AUTHORIZATION": "Bearer not-a-token"}, "/api/v1/apis"),
    ("lower case", lambda token: {"HTTP_AUTHORIZATION": f"bearer {token}"}, "/api/v1/apis"),
    ("valid", lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token}"}, "/api/v1/apis"),
    ("no scope", lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token}"}, "/api/v1/users"),
    (
        "query token",
        lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        "/api/v1/apis?access_token=x",
    ),
    (
        "bad query",
        lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        "/api/v1/apis?page_size=%zz",
    ),
    (
        "unknown query",
        lambda token: {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        "/api/v1/apis?nope=1",
    ),
]


@pytest.mark.parametrize(("case", "headers", "path"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_every_answer_is_the_one_of_the_database_path(settings, warm, case, headers, path) -> None:
    token, _client = warm

    def answer() -> tuple[int, str | None, bytes]:
        response = APIClient().get(path, **headers(token))
        return response.status_code, response.get("WWW-Authenticate"), response.content

    cached = answer()
    settings.APIKEYS = {**settings.APIKEYS, "M2M_TOKEN_CACHE_SECONDS": 0}
    assert answer() == cached
    if case == "valid":
        assert cached[0] == HTTPStatus.OK


def test_another_installations_change_of_the_same_application_id_leaves_ours_cached(
    app, warm, monkeypatch
):
    """Two installations (or test databases) may share one Redis and have applications with
    the same ids: their tokens' keys are apart, so the other's invalidation is not ours."""
    from django.db import connections

    settings_dict = connections["default"].settings_dict
    monkeypatch.setitem(settings_dict, "NAME", f"{settings_dict['NAME']}_elsewhere")
    tokencache.invalidate_application(app.application.pk)
    tokencache.invalidate_all()
    monkeypatch.undo()

    _token, client = warm
    response, queries = get_apis(client)
    assert (response.status_code, queries) == (HTTPStatus.OK, [])
