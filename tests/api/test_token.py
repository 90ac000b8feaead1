"""POST /oauth2/token: the client-credentials grant and its errors, and token checks;
client secrets checked in microseconds and failed client authentications throttled; a
disabled, deleted, re-keyed or narrowed application reaching the tokens it already holds."""

from __future__ import annotations

import base64
import random
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, make_password
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken, get_application_model
from oauthlib.common import Request as OauthlibRequest
from rest_framework.test import APIClient

from apikeys import crypto, services, tokencache
from apikeys.oauth import ManagementOAuth2Validator
from tests.api.conftest import error_codes, fetch_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return services.m2m_application_create(
        name="Svc", scopes=["read:api_keys", "verify:api_keys"], actor=services.Actor.system()
    )


def test_token_carries_every_granted_scope_by_default(app):
    response = fetch_token(app.application.client_id, app.client_secret)
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"read:api_keys", "verify:api_keys"}
    assert body["access_token"]
    assert response["Cache-Control"] == "no-store"


def test_http_basic_client_authentication(app):
    basic = base64.b64encode(f"{app.application.client_id}:{app.client_secret}".encode()).decode()
    response = APIClient().post(
        "/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == HTTPStatus.OK


def test_narrower_scope_is_granted_wider_is_invalid_scope(app):
    narrow = fetch_token(app.application.client_id, app.client_secret, scope="verify:api_keys")
    assert narrow.status_code == HTTPStatus.OK and narrow.json()["scope"] == "verify:api_keys"
    wide = fetch_token(
        app.application.client_id, app.client_secret, scope="verify:api_keys create:api_keys"
    )
    assert wide.status_code == HTTPStatus.BAD_REQUEST and wide.json()["error"] == "invalid_scope"


def test_bad_credentials_are_invalid_client(app):
    response = fetch_token(app.application.client_id, "wrong-secret")
    assert (
        response.status_code == HTTPStatus.UNAUTHORIZED
        and response.json()["error"] == "invalid_client"
    )
    unknown = fetch_token("no-such-client", "x")
    assert (
        unknown.status_code == HTTPStatus.UNAUTHORIZED
        and unknown.json()["error"] == "invalid_client"
    )
    assert "wrong-secret" not in response.content.decode()


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "magic"])
def test_other_grant_types_are_unsupported(app, grant):
    response = APIClient().post(
        "/oauth2/token",
        {
            "grant_type": grant,
            "client_id": app.application.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(app):
    response = APIClient().post("/oauth2/token", {"client_id": app.application.client_id})
    assert (
        response.status_code == HTTPStatus.BAD_REQUEST
        and response.json()["error"] == "invalid_request"
    )


def test_audience_must_be_the_management_api(app, settings):
    ours = fetch_token(
        app.application.client_id, app.client_secret, audience="http://testserver/api"
    )
    assert ours.status_code == HTTPStatus.OK
    foreign = fetch_token(
        app.application.client_id, app.client_secret, audience="https://elsewhere/api"
    )
    assert (
        foreign.status_code == HTTPStatus.BAD_REQUEST
        and foreign.json()["error"] == "invalid_request"
    )
    settings.APIKEYS = {
        **settings.APIKEYS,
        "MANAGEMENT_API_AUDIENCE": "https://keys.example.com/api",
    }
    configured = fetch_token(
        app.application.client_id, app.client_secret, audience="https://keys.example.com/api"
    )
    assert configured.status_code == HTTPStatus.OK


def test_no_unknown_or_expired_token_is_401(app):
    anonymous = APIClient().get("/api/v1/api_keys")
    assert anonymous.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    bogus = APIClient()
    bogus.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert bogus.get("/api/v1/api_keys").status_code == HTTPStatus.UNAUTHORIZED
    token = fetch_token(app.application.client_id, app.client_secret).json()["access_token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.OK
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    # A write past the services: the workers' token caches are told by hand (their own
    # expiry check is tested in tests/api/test_token_cache.py).
    tokencache.invalidate_all()
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.UNAUTHORIZED


def test_an_api_key_is_not_a_management_token(issued_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued_key.plaintext}")
    response = client.get("/api/v1/api_keys")
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert issued_key.plaintext not in response.content.decode()


def test_new_tokens_follow_a_changed_grant(app):
    services.m2m_application_set_scopes(
        application=app.application, scopes=["verify:api_keys"], actor=services.Actor.system()
    )
    body = fetch_token(app.application.client_id, app.client_secret).json()
    assert body["scope"] == "verify:api_keys"


def fresh_ip() -> str:
    """A client address no other test uses: failures are counted per IP in a cache (Redis in
    CI) that outlives one test."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def post_token(data: dict[str, str], ip: str, **headers: str) -> Any:
    return APIClient().post("/oauth2/token", data, REMOTE_ADDR=ip, **headers)


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# ------------------------------------------------------------------ errors (contract conformance)


@pytest.mark.parametrize(
    "case, status, error",
    [
        ("wrong-secret", HTTPStatus.UNAUTHORIZED, "invalid_client"),
        ("unknown-client", HTTPStatus.UNAUTHORIZED, "invalid_client"),
        ("scope-not-granted", HTTPStatus.BAD_REQUEST, "invalid_scope"),
        ("foreign-audience", HTTPStatus.BAD_REQUEST, "invalid_request"),
        ("other-grant", HTTPStatus.BAD_REQUEST, "unsupported_grant_type"),
    ],
)
def test_every_token_error_carries_an_error_description(app, case, status, error):
    data = {
        "grant_type": "client_credentials",
        "client_id": app.application.client_id,
        "client_secret": app.client_secret,
    }
    data.update(
        {
            "wrong-secret": {"client_secret": "wrong"},
            "unknown-client": {"client_id": "no-such-client"},
            "scope-not-granted": {"scope": "delete:api_keys"},
            "foreign-audience": {"audience": "https://elsewhere/api"},
            "other-grant": {"grant_type": "password"},
        }[case]
    )
    response = post_token(data, fresh_ip())
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str) and body["error_description"]


def _form_in(app: services.IssuedApplication, charset: str) -> Any:
    body = (
        f"grant_type=client_credentials&client_id={app.application.client_id}"
        f"&client_secret={app.client_secret}"
    ).encode()
    return APIClient().generic(
        "POST",
        "/oauth2/token",
        body,
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )


@pytest.mark.parametrize(
    "charset", ["latin9", "iso-8859-1", "utf-16", "latin-9", "x-no-such-charset"]
)
def test_a_form_in_another_charset_than_utf8_is_an_oauth_invalid_request(app, charset):
    response = _form_in(app, charset)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_request" and response.json()["error_description"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8"])
def test_a_form_in_utf8_is_read(app, charset):
    assert _form_in(app, charset).status_code == HTTPStatus.OK


# ------------------------------------------------------------------ throttling failures


@pytest.mark.parametrize("client", ["known", "unknown"])
def test_failed_client_authentications_are_throttled_per_client_id(app, settings, client):
    settings.APIKEYS = {
        **settings.APIKEYS,
        "TOKEN_FAILURE_LIMIT": 3,
        "TOKEN_FAILURE_LIMIT_PER_IP": 0,
    }
    client_id = app.application.client_id if client == "known" else f"guess-{random.random()}"
    wrong = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong"}

    statuses = [post_token(wrong, fresh_ip()).status_code for _ in range(5)]

    # Unknown ids are counted exactly like known ones: a 429 tells nobody an id exists.
    assert statuses == [401, 401, 401, 429, 429]
    limited = post_token(wrong, fresh_ip())
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert limited.json()["error"] == "invalid_client" and limited.json()["error_description"]
    # Another client id is not limited.
    other = {**wrong, "client_id": f"other-{random.random()}"}
    assert post_token(other, fresh_ip()).status_code == HTTPStatus.UNAUTHORIZED


def test_a_correct_secret_still_gets_its_token_past_the_limit(app, settings):
    settings.APIKEYS = {**settings.APIKEYS, "TOKEN_FAILURE_LIMIT": 2}
    ip = fresh_ip()
    client_id = app.application.client_id
    wrong = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "wrong"}
    for _ in range(3):
        post_token(wrong, ip)
    assert post_token(wrong, ip).status_code == HTTPStatus.TOO_MANY_REQUESTS

    right = post_token({**wrong, "client_secret": app.client_secret}, ip)

    assert right.status_code == HTTPStatus.OK and right.json()["access_token"]


def test_failed_client_authentications_are_throttled_per_ip(app, settings):
    settings.APIKEYS = {
        **settings.APIKEYS,
        "TOKEN_FAILURE_LIMIT": 0,
        "TOKEN_FAILURE_LIMIT_PER_IP": 3,
    }
    ip = fresh_ip()

    def guess(from_ip: str) -> int:
        data = {
            "grant_type": "client_credentials",
            "client_id": f"guess-{random.random()}",
            "client_secret": "x",
        }
        return post_token(data, from_ip).status_code

    assert [guess(ip) for _ in range(5)] == [401, 401, 401, 429, 429]
    assert guess(fresh_ip()) == HTTPStatus.UNAUTHORIZED


def test_http_basic_failures_count_against_their_client_id(app, settings):
    settings.APIKEYS = {
        **settings.APIKEYS,
        "TOKEN_FAILURE_LIMIT": 1,
        "TOKEN_FAILURE_LIMIT_PER_IP": 0,
    }
    basic = base64.b64encode(f"{app.application.client_id}:wrong".encode()).decode()
    statuses = [
        post_token(
            {"grant_type": "client_credentials"}, fresh_ip(), HTTP_AUTHORIZATION=f"Basic {basic}"
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 429, 429]


# ------------------------------------------------------------------ client secrets: a keyed digest


def _authenticate(client_id: str, secret: str) -> bool:
    request = OauthlibRequest(
        "http://testserver/oauth2/token",
        "POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    request.client_id, request.client_secret, request.client = client_id, secret, None
    return ManagementOAuth2Validator().authenticate_client(request)


def test_client_secrets_are_stored_with_the_keyed_digest(app):
    stored = get_application_model().objects.get(pk=app.application.pk).client_secret
    assert stored.startswith("apikeys_client_hmac$")
    assert app.client_secret not in stored


def test_a_wrong_secret_and_an_unknown_client_cost_the_same_work(app, monkeypatch):
    """One query and one keyed digest each, no password hash: an outsider cannot tell from
    the time taken whether a client id exists, nor make the service spend a password hash."""
    digests: list[str] = []
    real_digest = crypto.digest
    monkeypatch.setattr(
        crypto, "digest", lambda key, secret: digests.append(key) or real_digest(key, secret)
    )

    def slow(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a password hash was computed")

    monkeypatch.setattr(Argon2PasswordHasher, "verify", slow)
    monkeypatch.setattr(Argon2PasswordHasher, "encode", slow)
    work = {}
    for case, client_id in (("wrong", app.application.client_id), ("unknown", "no-such-client")):
        digests.clear()
        with CaptureQueriesContext(connection) as queries:
            assert not _authenticate(client_id, "wrong-secret")
        work[case] = (len(queries), len(digests))
    assert work["wrong"] == work["unknown"] == (1, 1)
    assert _authenticate(app.application.client_id, app.client_secret)


def test_checking_a_client_secret_runs_the_keyed_digest_never_a_password_hash(app, monkeypatch):
    """A password hash (Argon2: hundreds of milliseconds of CPU) on every token request would
    let anyone with a client id burn the server's CPU; the keyed digest is one HMAC. Checked
    by which hasher runs, not by timing: a right secret, a wrong one and an unknown client
    each cost exactly one keyed-digest check and no password hash."""
    from django.contrib.auth.hashers import get_hashers

    from apikeys.hashers import ClientSecretHasher

    ran: list[str] = []
    for hasher_class in {type(h) for h in get_hashers()}:
        real = hasher_class.verify

        def spy(self, password, encoded, real=real, name=hasher_class.__name__):
            ran.append(name)
            return real(self, password, encoded)

        monkeypatch.setattr(hasher_class, "verify", spy)

    for client_id, secret, accepted in (
        (app.application.client_id, app.client_secret, True),
        (app.application.client_id, "wrong-secret", False),
        ("no-such-client", "wrong-secret", False),
    ):
        ran.clear()
        assert _authenticate(client_id, secret) is accepted
        assert ran == [ClientSecretHasher.__name__]


def test_an_argon2_hashed_secret_still_works_and_moves_to_the_keyed_digest(app):
    Application = get_application_model()
    Application.objects.filter(pk=app.application.pk).update(
        client_secret=make_password(app.client_secret, hasher="argon2")
    )
    assert fetch_token(app.application.client_id, "wrong").status_code == HTTPStatus.UNAUTHORIZED
    assert Application.objects.get(pk=app.application.pk).client_secret.startswith("argon2$")

    first = fetch_token(app.application.client_id, app.client_secret)

    assert first.status_code == HTTPStatus.OK
    assert Application.objects.get(pk=app.application.pk).client_secret.startswith(
        "apikeys_client_hmac$"
    )
    assert fetch_token(app.application.client_id, app.client_secret).status_code == HTTPStatus.OK
    assert fetch_token(app.application.client_id, "wrong").status_code == HTTPStatus.UNAUTHORIZED


# ------------------------------------------------------------------ cutting off issued tokens


@pytest.fixture
def revoker(issued_key) -> services.IssuedApplication:
    return services.m2m_application_create(
        name="Revoker", scopes=["read:api_keys", "delete:api_keys"], actor=services.Actor.system()
    )


def _token(issued: services.IssuedApplication) -> str:
    response = fetch_token(issued.application.client_id, issued.client_secret)
    assert response.status_code == HTTPStatus.OK
    return response.json()["access_token"]


def test_a_token_whose_application_lost_a_scope_loses_it_at_once(revoker, issued_key):
    client = bearer(_token(revoker))
    services.m2m_application_set_scopes(
        application=revoker.application, scopes=["read:api_keys"], actor=services.Actor.system()
    )

    response = client.delete(f"/api/v1/api_keys/{issued_key.api_key.id}")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert error_codes(response) == ["INSUFFICIENT_SCOPE"]
    issued_key.api_key.refresh_from_db()
    assert issued_key.api_key.status == "active"
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.OK  # what it kept


def test_a_disabled_application_is_cut_off_and_can_be_re_enabled(revoker):
    actor = services.Actor.system()
    client = bearer(_token(revoker))
    services.m2m_application_disable(application=revoker.application, actor=actor)

    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.UNAUTHORIZED
    refused = fetch_token(revoker.application.client_id, revoker.client_secret)
    assert (
        refused.status_code == HTTPStatus.UNAUTHORIZED
        and refused.json()["error"] == "invalid_client"
    )

    services.m2m_application_enable(application=revoker.application, actor=actor)

    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.OK
    assert (
        fetch_token(revoker.application.client_id, revoker.client_secret).status_code
        == HTTPStatus.OK
    )


def test_a_deleted_application_s_tokens_are_refused(revoker):
    client = bearer(_token(revoker))
    services.m2m_application_delete(application=revoker.application, actor=services.Actor.system())
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.UNAUTHORIZED


def test_a_regenerated_secret_ends_the_old_secret_and_its_tokens(revoker):
    client = bearer(_token(revoker))

    renewed = services.m2m_application_regenerate_secret(
        application=revoker.application, actor=services.Actor.system()
    )

    assert (
        fetch_token(revoker.application.client_id, revoker.client_secret).status_code
        == HTTPStatus.UNAUTHORIZED
    )
    assert client.get("/api/v1/api_keys").status_code == HTTPStatus.UNAUTHORIZED
    assert renewed.client_secret != revoker.client_secret
    assert bearer(_token(renewed)).get("/api/v1/api_keys").status_code == HTTPStatus.OK


def test_checking_the_application_costs_no_extra_query(revoker, django_assert_num_queries):
    client = bearer(_token(revoker))
    with django_assert_num_queries(2):  # the token with its application and grant, the page
        assert client.get("/api/v1/api_keys").status_code == HTTPStatus.OK
