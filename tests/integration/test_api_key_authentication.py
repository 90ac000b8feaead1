"""``ApiKeyAuthentication`` through real DRF requests: every verify outcome, what the request
carries afterwards, the 401 challenge, and precedence with other authenticators."""

from __future__ import annotations

import logging
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from apikeys import crypto, services
from apikeys.authentication import ApiKeyAuthentication, OrganizationPrincipal
from apikeys.models import ApiKey
from tests.factories import last_character_changed

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.integration.urls")]

INVALID_TOKEN_CHALLENGE = 'Bearer realm="api", error="invalid_token"'


def get(path: str, key: str | None = None, **extra: Any):
    client = APIClient()
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client.get(path, **extra)


def error_codes(response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


def test_a_valid_organization_key_authenticates_with_the_verification_as_auth(issued_key):
    response = get("/whoami", issued_key.plaintext)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["authenticator"] == "ApiKeyAuthentication"
    assert body["auth"] == "Verification"
    assert body["key_id"] == issued_key.api_key.id
    assert body["scopes"] == ["read:users", "write:users"]


def test_an_organization_key_makes_an_authenticated_organization_principal(issued_key):
    body = get("/whoami", issued_key.plaintext).json()

    assert body["user_type"] == "OrganizationPrincipal"
    assert body["is_authenticated"] is True
    assert body["user_org_code"] == issued_key.api_key.org_code
    # pk is the organization code, so per-user throttles count per organization.
    assert body["user_pk"] == issued_key.api_key.org_code


def test_a_user_key_makes_request_user_the_owning_user(user_key, user):
    body = get("/whoami", user_key.plaintext).json()

    assert body["user_type"] == type(user).__name__
    assert body["user_public_id"] == user.public_id
    assert body["is_authenticated"] is True


def test_a_user_key_costs_one_query_more_than_an_organization_key(
    database_path, issued_key, user_key, django_assert_max_num_queries
):
    from django.db import connection

    # One statement on PostgreSQL (the count and its hour of usage history together); on
    # SQLite two in one transaction, a savepoint inside the test's own (two more).
    key = 1 if connection.vendor == "postgresql" else 4
    with django_assert_max_num_queries(key):
        assert get("/whoami", issued_key.plaintext).status_code == HTTPStatus.OK
    with django_assert_max_num_queries(key + 1):
        assert get("/whoami", user_key.plaintext).status_code == HTTPStatus.OK


def test_with_the_key_cache_a_user_key_reads_the_user_only_when_the_view_asks(
    key_cache, user_key, user, django_assert_num_queries
):
    assert get("/example/users", user_key.plaintext).status_code == HTTPStatus.OK  # warm
    with django_assert_num_queries(0):
        assert get("/example/users", user_key.plaintext).status_code == HTTPStatus.OK
    with django_assert_num_queries(1):
        body = get("/whoami", user_key.plaintext).json()
    assert (body["user_type"], body["user_public_id"]) == (type(user).__name__, user.public_id)
    assert body["is_authenticated"] is True


def test_with_the_key_cache_deactivating_a_user_refuses_their_key_on_the_next_request(
    key_cache, user_key, user, actor
):
    assert get("/example/users", user_key.plaintext).status_code == HTTPStatus.OK  # warm
    services.user_update(user=user, is_active=False, actor=actor)

    response = get("/example/users", user_key.plaintext)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_INVALID"]

    services.user_update(user=user, is_active=True, actor=actor)
    assert get("/example/users", user_key.plaintext).status_code == HTTPStatus.OK


def test_a_deactivated_users_key_is_refused(user_key, user):
    user.is_active = False
    user.save(update_fields=["is_active"])

    response = get("/whoami", user_key.plaintext)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_INVALID"]


def test_each_request_is_counted_with_the_callers_ip_like_the_verify_endpoint(issued_key):
    get("/whoami", issued_key.plaintext, REMOTE_ADDR="198.51.100.7")
    get("/whoami", issued_key.plaintext, REMOTE_ADDR="198.51.100.8")

    row = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert row.verification_count == 2
    assert row.last_verified_ip == "198.51.100.8"
    assert row.last_verified_on is not None


def test_a_trusted_proxys_forwarded_address_is_recorded(issued_key, settings):
    settings.APIKEYS = {**settings.APIKEYS, "TRUST_X_FORWARDED_FOR": True}

    get(
        "/whoami",
        issued_key.plaintext,
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.66, 198.51.100.9",
    )

    assert ApiKey.objects.get(pk=issued_key.api_key.pk).last_verified_ip == "198.51.100.9"


def test_a_revoked_key_is_refused_on_the_very_next_request(issued_key, actor):
    assert get("/whoami", issued_key.plaintext).status_code == HTTPStatus.OK

    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    response = get("/whoami", issued_key.plaintext)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_REVOKED"]
    assert response["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE


def test_a_rotated_keys_old_secret_is_refused_and_the_new_one_accepted(issued_key, actor):
    assert get("/whoami", issued_key.plaintext).status_code == HTTPStatus.OK

    rotated = services.api_key_rotate(api_key=issued_key.api_key, actor=actor)

    old = get("/whoami", issued_key.plaintext)
    assert old.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(old) == ["API_KEY_INVALID"]
    new = get("/whoami", rotated.plaintext)
    assert new.status_code == HTTPStatus.OK
    assert new.json()["key_id"] == issued_key.api_key.id


def test_during_a_rotation_grace_period_both_secrets_authenticate(issued_key, actor):
    rotated = services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=600, actor=actor)

    assert get("/whoami", issued_key.plaintext).status_code == HTTPStatus.OK
    assert get("/whoami", rotated.plaintext).status_code == HTTPStatus.OK


def test_an_expired_key_is_refused(issued_key):
    # No service expires a key early; move its expiry into the past the way time would.
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = get("/whoami", issued_key.plaintext)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_EXPIRED"]


def test_a_view_with_an_audience_refuses_keys_of_other_apis_uncounted(issued_key):
    refused = get("/billing-audience", issued_key.plaintext)

    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(refused) == ["API_KEY_WRONG_AUDIENCE"]
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 0


def test_a_view_with_an_audience_accepts_keys_of_its_own_api(issued_key):
    assert issued_key.api_key.audience == "https://users.example.com"

    assert get("/users-audience", issued_key.plaintext).status_code == HTTPStatus.OK


def _flip_last_character(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(lambda issued: "k_live_garbage", id="garbage-with-our-prefix"),
        pytest.param(lambda issued: crypto.generate_key(), id="well-formed-but-unknown"),
        pytest.param(lambda issued: _flip_last_character(issued.plaintext), id="bad-checksum"),
        pytest.param(
            lambda issued: (
                crypto.KEY_PREFIX + issued.plaintext[len(crypto.KEY_PREFIX) :].swapcase()
            ),
            id="wrong-case",
        ),
        pytest.param(lambda issued: f"{issued.plaintext} trailing-word", id="two-words"),
    ],
)
def test_a_bad_key_with_our_prefix_gets_401_invalid_with_a_challenge(issued_key, make_key):
    response = get("/whoami", make_key(issued_key))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_INVALID"]
    assert response["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE
    assert response["Content-Type"] == "application/json"


def test_a_key_with_bytes_outside_ascii_is_refused_as_invalid(issued_key):
    # The test client encodes headers as ISO-8859-1, as servers hand them to Django.
    response = get("/whoami", issued_key.plaintext[:-1] + "é")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_INVALID"]


def test_a_refused_key_is_reported_with_the_contracts_body():
    response = get("/whoami", "k_live_garbage")

    assert response.json() == {
        "errors": [{"code": "API_KEY_INVALID", "message": "Invalid API key"}]
    }


def test_a_request_without_credentials_gets_401_with_a_bare_challenge():
    response = get("/whoami")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_MISSING"]
    # RFC 6750 section 3.1: no error code when the request carried no credentials.
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_the_bearer_scheme_is_case_insensitive(issued_key):
    response = APIClient().get("/whoami", HTTP_AUTHORIZATION=f"bearer {issued_key.plaintext}")

    assert response.status_code == HTTPStatus.OK


def test_a_token_that_is_not_ours_falls_through_to_the_next_authenticator(issued_key):
    response = get("/key-or-other-bearer", "an-oauth-access-token")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["authenticator"] == "OtherBearerAuthentication"
    assert response.json()["auth"] == "other:an-oauth-access-token"


def test_a_bad_key_with_our_prefix_never_falls_through(issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)

    # The next class would accept any Bearer token; a revoked key must not reach it.
    response = get("/key-or-other-bearer", issued_key.plaintext)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(response) == ["API_KEY_REVOKED"]


def test_an_oauth_access_token_still_authenticates_behind_api_keys(issued_key, actor):
    application = services.m2m_application_create(
        name="Billing service", scopes=["read:api_keys"], actor=actor
    ).application
    get_access_token_model().objects.create(
        application=application,
        token="oauth-access-token-for-the-test",
        expires=timezone.now() + timedelta(hours=1),
        scope="read:api_keys",
    )

    by_token = get("/key-or-oauth-token", "oauth-access-token-for-the-test")
    by_key = get("/key-or-oauth-token", issued_key.plaintext)

    assert by_token.status_code == HTTPStatus.OK
    assert by_token.json()["authenticator"] == "OAuth2Authentication"
    assert by_key.status_code == HTTPStatus.OK
    assert by_key.json()["authenticator"] == "ApiKeyAuthentication"


@pytest.mark.parametrize(
    "header",
    ["", "Basic dXNlcjpwYXNz", "Bearer", "Bearer an-oauth-access-token", "Token k_live_x"],
)
def test_credentials_that_are_not_ours_are_left_alone_without_a_query(
    header, django_assert_num_queries
):
    request = APIView().initialize_request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=header))

    with django_assert_num_queries(0):
        assert ApiKeyAuthentication().authenticate(request) is None


def test_no_part_of_a_refused_key_reaches_the_logs_or_the_body(issued_key, actor, caplog):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    secret_part = issued_key.plaintext[len(crypto.KEY_PREFIX) :]

    with caplog.at_level(logging.DEBUG):
        revoked = get("/whoami", issued_key.plaintext)
        unknown = get("/whoami", issued_key.plaintext[:-3] + "abc")

    assert "API key refused: API_KEY_REVOKED" in caplog.text
    for response in (revoked, unknown):
        assert secret_part[:8] not in response.content.decode()
    assert secret_part[:8] not in caplog.text


def test_an_organization_principal_grants_nothing_and_is_never_taken_for_a_user():
    principal = OrganizationPrincipal(org_code="org_acme", key_id="api_key_x")

    assert principal.is_authenticated and not principal.is_anonymous
    assert not (principal.is_staff or principal.is_superuser)
    assert not principal.has_perm("apikeys.view_apikey")
    with pytest.raises(TypeError):
        ApiKey.objects.filter(user=principal)


# ------------------------------------------------------------------ the failure limit

FAILURE_LIMIT = 3
FAILURE_WINDOW = 60


def guess() -> str:
    body = crypto.KEY_PREFIX + "0" * crypto.RANDOM_LENGTH
    return body + crypto.checksum(body)


@pytest.fixture
def failure_limit(settings):
    from django.core.cache import cache

    cache.clear()
    settings.APIKEYS = {
        **settings.APIKEYS,
        "AUTHENTICATION_FAILURE_LIMIT": FAILURE_LIMIT,
        "AUTHENTICATION_FAILURE_WINDOW": FAILURE_WINDOW,
    }


def test_past_the_failure_limit_refusals_are_429_per_ip_and_valid_keys_still_pass(
    failure_limit, issued_key
):
    guesser = {"REMOTE_ADDR": "203.0.113.5"}
    bad = [guess(), last_character_changed(issued_key.plaintext), f"{issued_key.plaintext} extra"]
    answers = [get("/whoami", bad[n % len(bad)], **guesser) for n in range(FAILURE_LIMIT + 2)]

    assert [a.status_code for a in answers] == [HTTPStatus.UNAUTHORIZED] * FAILURE_LIMIT + [
        HTTPStatus.TOO_MANY_REQUESTS
    ] * 2
    for answer in answers[FAILURE_LIMIT:]:
        assert answer.json() == {
            "errors": [{"code": "RATE_LIMITED", "message": answer.json()["errors"][0]["message"]}]
        }
        assert 1 <= int(answer["Retry-After"]) <= FAILURE_WINDOW
        assert answer["RateLimit-Reset"] == answer["Retry-After"]
    # The same IP's valid key still authenticates; another IP's refusals are still 401s.
    assert get("/whoami", issued_key.plaintext, **guesser).status_code == HTTPStatus.OK
    other = get("/whoami", guess(), REMOTE_ADDR="203.0.113.6")
    assert other.status_code == HTTPStatus.UNAUTHORIZED
    assert error_codes(other) == ["API_KEY_INVALID"]


def test_a_zero_failure_limit_switches_it_off(settings, issued_key):
    from django.core.cache import cache

    cache.clear()
    settings.APIKEYS = {**settings.APIKEYS, "AUTHENTICATION_FAILURE_LIMIT": 0}
    answers = [get("/whoami", guess(), REMOTE_ADDR="203.0.113.7") for _ in range(5)]
    assert {a.status_code for a in answers} == {HTTPStatus.UNAUTHORIZED}


def test_a_key_over_its_rate_limit_answers_429_with_retry_after_and_is_no_guess(
    api, read_users, organization, actor, settings
):
    settings.APIKEYS = {**settings.APIKEYS, "AUTHENTICATION_FAILURE_LIMIT": 1}
    limited = services.api_key_issue(
        name="Limited",
        api=api,
        scopes=["read:users"],
        organization=organization,
        ratelimit={"limit": 1, "duration": 60},
        actor=actor,
    )
    assert get("/whoami", limited.plaintext).status_code == HTTPStatus.OK
    for _ in range(3):
        response = get("/whoami", limited.plaintext)
        assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert error_codes(response) == ["API_KEY_RATE_LIMITED"]
        assert 1 <= int(response["Retry-After"]) <= 60
    # No failure was recorded for them: a bad key is still a 401, not the guessing 429.
    response = get("/whoami", "k_live_" + "x" * 40)
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_a_key_without_credits_answers_429_usage_exceeded(api, read_users, organization, actor):
    spent = services.api_key_issue(
        name="Spent",
        api=api,
        scopes=["read:users"],
        organization=organization,
        credits={"remaining": 1},
        actor=actor,
    )
    assert get("/whoami", spent.plaintext).status_code == HTTPStatus.OK
    response = get("/whoami", spent.plaintext)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert error_codes(response) == ["API_KEY_USAGE_EXCEEDED"]
