"""Property-based tests: no body, however malformed, gets a 500 or an HTML page."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.models import ApiKey

pytestmark = pytest.mark.django_db

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = ["name", "api_id", "scope_ids", "org_code", "user_id", "type", "expires_at", "extra"]


def create_bodies(api_id: str, org_code: str) -> st.SearchStrategy:
    plausible = st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=140) | JSON_VALUES,
            "api_id": st.sampled_from([api_id, "0" * 32, ""]) | JSON_VALUES,
            "scope_ids": st.lists(
                st.sampled_from(["read:users", "nope"]) | JSON_SCALARS, max_size=3
            )
            | JSON_VALUES,
            "org_code": st.sampled_from([org_code, "org_zzz"]) | JSON_VALUES,
            "user_id": st.sampled_from(["kp_" + "0" * 32]) | JSON_VALUES,
            "type": st.sampled_from(["organization", "user", "x"]) | JSON_VALUES,
            "expires_at": st.sampled_from(
                ["2099-01-01T00:00:00+00:00", "2001-01-01T00:00:00Z", "soon"]
            )
            | JSON_VALUES,
        },
    )
    return (
        plausible
        | st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=6)
        | JSON_VALUES
    )


def assert_json_answer(response, allowed):
    assert response.status_code in allowed, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    if response.status_code >= 400:
        assert body["errors"] and all(e["code"].isupper() for e in body["errors"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_create_never_500s(client_all, api, read_users, organization, data):
    body = data.draw(create_bodies(api.id, organization.code))
    before = ApiKey.objects.count()
    response = client_all.post("/api/v1/api_keys", body, format="json")
    assert_json_answer(response, {HTTPStatus.CREATED, HTTPStatus.BAD_REQUEST})
    assert ApiKey.objects.count() == before + (
        1 if response.status_code == HTTPStatus.CREATED else 0
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.fixed_dictionaries({}, optional={"api_key": JSON_VALUES, "audience": JSON_VALUES})
    | JSON_VALUES
)
def test_verify_never_500s(client_all, body):
    response = client_all.post("/api/v1/api_keys/verify", body, format="json")
    assert_json_answer(response, {HTTPStatus.OK, HTTPStatus.BAD_REQUEST})
    if response.status_code == HTTPStatus.OK:
        assert response.json()["is_valid"] is False


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_500(client_all, raw):
    for path in ("/api/v1/api_keys", "/api/v1/api_keys/verify"):
        response = client_all.generic("POST", path, raw, content_type="application/json")
        assert_json_answer(response, {HTTPStatus.CREATED, HTTPStatus.OK, HTTPStatus.BAD_REQUEST})


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.dictionaries(
        st.sampled_from(["page_size", "starting_after", "status", "key_type", "org_code"]),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_list_queries_never_500(client_all, query):
    response = client_all.get("/api/v1/api_keys", query)
    assert_json_answer(response, {HTTPStatus.OK, HTTPStatus.BAD_REQUEST})


def test_verify_body_with_a_valid_key_in_a_weird_envelope_is_not_verified(client_all, issued_key):
    for body in (
        [issued_key.plaintext],
        {"api_key": [issued_key.plaintext]},
        {"api_key": {"k": issued_key.plaintext}},
    ):
        response = client_all.generic(
            "POST", "/api/v1/api_keys/verify", json.dumps(body), content_type="application/json"
        )
        assert response.status_code == HTTPStatus.BAD_REQUEST
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 0


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/v1/api_keys?org_code=org_%00x", None),
        ("get", "/api/v1/organization?code=%00", None),
        ("get", "/api/v1/organizations?starting_after=org_%00", None),
        ("get", "/api/v1/users?email=a%00b", None),
        ("get", "/api/v1/organizations/org_%00/users", None),
        ("post", "/api/v1/api_keys/verify", {"api_key": "k", "audience": "a\x00b"}),
        ("post", "/api/v1/api_keys", {"name": "a\x00b", "api_id": "x", "org_code": "org_x"}),
        ("post", "/api/v1/organization", {"name": "Acme", "code": "org_\x00"}),
        ("post", "/api/v1/user", {"email": "a\x00@example.com"}),
    ],
)
def test_nul_characters_are_refused_not_crashed_on(client_all, method, path, body):
    """PostgreSQL refuses NUL in text: these must be 4xx on every database."""
    response = (
        getattr(client_all, method)(path, body, format="json")
        if body
        else getattr(client_all, method)(path)
    )
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND), response.content
    assert response["Content-Type"].startswith("application/json")
