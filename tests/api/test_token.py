"""POST /oauth2/token: the client-credentials grant and its errors, and token checks."""

from __future__ import annotations

import base64
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from apikeys import services
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
    wide = fetch_token(app.application.client_id, app.client_secret, scope="verify:api_keys create:api_keys")
    assert wide.status_code == HTTPStatus.BAD_REQUEST and wide.json()["error"] == "invalid_scope"


def test_bad_credentials_are_invalid_client(app):
    response = fetch_token(app.application.client_id, "wrong-secret")
    assert response.status_code == HTTPStatus.UNAUTHORIZED and response.json()["error"] == "invalid_client"
    unknown = fetch_token("no-such-client", "x")
    assert unknown.status_code == HTTPStatus.UNAUTHORIZED and unknown.json()["error"] == "invalid_client"
    assert "wrong-secret" not in response.content.decode()


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "magic"])
def test_other_grant_types_are_unsupported(app, grant):
    response = APIClient().post(
        "/oauth2/token",
        {"grant_type": grant, "client_id": app.application.client_id, "client_secret": app.client_secret},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(app):
    response = APIClient().post("/oauth2/token", {"client_id": app.application.client_id})
    assert response.status_code == HTTPStatus.BAD_REQUEST and response.json()["error"] == "invalid_request"


def test_audience_must_be_the_management_api(app, settings):
    ours = fetch_token(app.application.client_id, app.client_secret, audience="http://testserver/api")
    assert ours.status_code == HTTPStatus.OK
    foreign = fetch_token(app.application.client_id, app.client_secret, audience="https://elsewhere/api")
    assert foreign.status_code == HTTPStatus.BAD_REQUEST and foreign.json()["error"] == "invalid_request"
    settings.APIKEYS = {**settings.APIKEYS, "MANAGEMENT_API_AUDIENCE": "https://keys.example.com/api"}
    configured = fetch_token(app.application.client_id, app.client_secret, audience="https://keys.example.com/api")
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
