"""API keys over the Management API: create, list, get, rotate, revoke, verify."""

from __future__ import annotations

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import ApiKey, AuditEvent
from tests.api.conftest import error_codes, warm_token_queries
from tests.factories import (
    ApiFactory,
    OrganizationFactory,
    ScopeFactory,
    UserFactory,
    last_character_changed,
)

pytestmark = pytest.mark.django_db

KEY_FIELDS = {
    "id",
    "name",
    "type",
    "status",
    "key_prefix",
    "key_suffix",
    "created_on",
    "created_by",
    "last_verified_on",
    "last_verified_ip",
    "verification_count",
    "api_ids",
    "scopes",
    "org_code",
    "user_id",
    "expires_at",
    "rotated_on",
    "revoked_on",
    "ratelimit",
    "credits",
}
VERIFY_FIELDS = {
    "code",
    "message",
    "is_valid",
    "key_id",
    "status",
    "scopes",
    "org_code",
    "user_id",
    "last_verified_on",
    "verification_count",
    "api_id",
    "audience",
    "expires_at",
}


def verify(client: APIClient, key: str, **extra) -> dict:
    response = client.post("/api/v1/api_keys/verify", {"api_key": key, **extra}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert set(body) == VERIFY_FIELDS
    return body


def test_kinde_quick_start_flow(client_all):
    """Create an API and scopes, an org key and a user key (scopes given by key), verify,
    rotate, revoke: every step through HTTP with a real token."""
    api = client_all.post(
        "/api/v1/apis", {"name": "Users API", "audience": "https://users.acme"}, format="json"
    )
    assert api.status_code == HTTPStatus.CREATED and api.json()["code"] == "API_CREATED"
    api_id = api.json()["api"]["id"]
    for key in ("read:users", "write:users"):
        scope = client_all.post(
            f"/api/v1/apis/{api_id}/scopes", {"key": key, "description": key}, format="json"
        )
        assert scope.status_code == HTTPStatus.CREATED and scope.json()["scope"]["id"].startswith(
            "api_scope_"
        )
    org = client_all.post("/api/v1/organization", {"name": "Acme"}, format="json")
    assert org.status_code == HTTPStatus.CREATED
    org_code = org.json()["organization"]["code"]
    user = client_all.post("/api/v1/user", {"email": "dev@acme.example"}, format="json")
    assert user.status_code == HTTPStatus.CREATED and user.json()["created"] is True
    user_id = user.json()["id"]

    created = {}
    for owner in ({"org_code": org_code}, {"user_id": user_id}):
        response = client_all.post(
            "/api/v1/api_keys",
            {
                "name": "Quick start",
                "api_id": api_id,
                "scope_ids": ["read:users", "write:users"],
                **owner,
            },
            format="json",
        )
        assert response.status_code == HTTPStatus.CREATED, response.content
        body = response.json()
        assert body["code"] == "API_KEY_CREATED" and body["message"] == "API key created"
        assert set(body["api_key"]) == {"id", "key"}
        assert response["Cache-Control"] == "no-store"
        created[next(iter(owner))] = body["api_key"]

    for owner_field, item in created.items():
        result = verify(client_all, item["key"])
        assert result["is_valid"] is True and result["code"] == "API_KEY_VERIFIED"
        assert result["key_id"] == item["id"] and result["status"] == "active"
        assert result["scopes"] == ["read:users", "write:users"]
        assert result["verification_count"] == 1
        assert result["api_id"] == api_id and result["audience"] == "https://users.acme"
        assert result["org_code"] == (org_code if owner_field == "org_code" else None)
        assert result["user_id"] == (user_id if owner_field == "user_id" else None)
        assert result["last_verified_on"].endswith("+00:00")

    org_key = created["org_code"]
    rotated = client_all.put(f"/api/v1/api_keys/{org_key['id']}", format="json")
    assert rotated.status_code == HTTPStatus.CREATED
    assert rotated.json()["code"] == "API_KEY_ROTATED"
    assert rotated.json()["api_key"]["id"] == org_key["id"]
    new_key = rotated.json()["api_key"]["key"]
    assert verify(client_all, org_key["key"])["code"] == "API_KEY_INVALID"
    again = verify(client_all, new_key)
    assert (
        again["is_valid"] and again["key_id"] == org_key["id"] and again["verification_count"] == 2
    )

    revoked = client_all.delete(f"/api/v1/api_keys/{org_key['id']}")
    assert revoked.status_code == HTTPStatus.OK and revoked.json() == {
        "message": "Success",
        "code": "OK",
    }
    refused = verify(client_all, new_key)
    assert refused["is_valid"] is False and refused["code"] == "API_KEY_REVOKED"
    assert refused["key_id"] == org_key["id"] and refused["status"] == "revoked"


def test_get_returns_the_documented_fields(client_all, issued_key, api):
    response = client_all.get(f"/api/v1/api_keys/{issued_key.api_key.id}")
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["code"] == "OK"
    item = body["api_key"]
    assert set(item) == KEY_FIELDS
    assert (
        item["key_prefix"] == issued_key.plaintext[:12]
        and item["key_suffix"] == issued_key.plaintext[-4:]
    )
    assert item["api_ids"] == [api.id] and item["scopes"] == ["read:users", "write:users"]
    assert item["type"] == "organization" and item["status"] == "active"
    assert issued_key.plaintext not in response.content.decode()
    assert issued_key.api_key.digest not in response.content.decode()


@pytest.mark.parametrize(
    "key_id", ["api_key_" + "0" * 32, "nope", "api_scope_" + "0" * 32, "0" * 32]
)
def test_unknown_or_foreign_key_ids_in_the_path_are_404(client_all, key_id):
    for method in ("get", "put", "patch", "delete"):
        response = getattr(client_all, method)(f"/api/v1/api_keys/{key_id}", format="json")
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert error_codes(response) == ["API_KEY_NOT_FOUND"]


def test_created_by_and_audit_name_the_application(make_client, api, organization):
    client = make_client(["create:api_keys"], name="Billing service")
    response = client.post(
        "/api/v1/api_keys",
        {"name": "k", "api_id": api.id, "org_code": organization.code},
        format="json",
    )
    key = ApiKey.objects.get(pk=response.json()["api_key"]["id"])
    assert key.created_by == "Billing service"
    assert key.created_by_application == client.application
    event = AuditEvent.objects.get(target_id=key.id, action="api_key.issued")
    assert event.actor_type == "application" and event.actor_application == client.application
    assert event.actor_label == "Billing service" and event.ip == "127.0.0.1"


# ------------------------------------------------------------------ create: bad input


@pytest.fixture
def create_body(api, read_users, organization):
    return {
        "name": "Backend",
        "api_id": api.id,
        "scope_ids": ["read:users"],
        "org_code": organization.code,
    }


@pytest.mark.parametrize(
    "change, code",
    [
        ({"name": None}, "INVALID_FIELD"),
        ({"name": ""}, "INVALID_FIELD"),
        ({"name": 123}, "INVALID_FIELD"),
        ({"name": "x" * 129}, "INVALID_FIELD"),
        ({"api_id": "0" * 32}, "API_NOT_FOUND"),
        ({"api_id": "api_scope_" + "0" * 32}, "API_NOT_FOUND"),
        ({"api_id": 5}, "INVALID_FIELD"),
        ({"scope_ids": "read:users"}, "INVALID_FIELD"),
        ({"scope_ids": [1]}, "INVALID_FIELD"),
        ({"scope_ids": ["read:nothing"]}, "SCOPE_NOT_FOUND"),
        ({"org_code": "org_doesnotexist"}, "ORGANIZATION_NOT_FOUND"),
        ({"org_code": None}, "OWNER_REQUIRED"),
        ({"user_id": "kp_" + "0" * 32}, "OWNER_AMBIGUOUS"),
        ({"type": "user"}, "OWNER_TYPE_MISMATCH"),
        ({"type": "team"}, "INVALID_FIELD"),
        ({"expires_at": "2001-01-01T00:00:00+00:00"}, "EXPIRES_AT_IN_PAST"),
        ({"expires_at": "2099-01-01T00:00:00"}, "INVALID_FIELD"),
        ({"expires_at": "tomorrow"}, "INVALID_FIELD"),
        ({"surprise": 1}, "UNKNOWN_FIELD"),
    ],
)
def test_bad_create_bodies_get_a_specific_code_and_create_nothing(
    client_all, create_body, change, code
):
    body = {**create_body, **change}
    response = client_all.post("/api/v1/api_keys", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert code in error_codes(response)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    "missing, code", [("name", "FIELD_REQUIRED"), ("api_id", "FIELD_REQUIRED")]
)
def test_missing_fields(client_all, create_body, missing, code):
    del create_body[missing]
    response = client_all.post("/api/v1/api_keys", create_body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == [code]
    assert response.json()["errors"][0]["field"] == missing


def test_unknown_user_and_scope_of_another_api(client_all, api, read_users):
    other_scope = ScopeFactory(api=ApiFactory(), key="billing:read")
    base = {"name": "k", "api_id": api.id}
    unknown_user = client_all.post(
        "/api/v1/api_keys", {**base, "user_id": "kp_" + "0" * 32}, format="json"
    )
    assert error_codes(unknown_user) == ["USER_NOT_FOUND"]
    foreign = client_all.post(
        "/api/v1/api_keys",
        {**base, "user_id": UserFactory().public_id, "scope_ids": [other_scope.id]},
        format="json",
    )
    assert foreign.status_code == HTTPStatus.BAD_REQUEST and error_codes(foreign) == [
        "SCOPE_NOT_FOUND"
    ]
    assert not ApiKey.objects.exists()


def test_scope_ids_accept_ids_and_keys_and_may_be_empty(
    client_all, api, read_users, write_users, user
):
    response = client_all.post(
        "/api/v1/api_keys",
        {
            "name": "k",
            "api_id": api.id,
            "scope_ids": [read_users.id, "write:users"],
            "user_id": user.public_id,
            "type": "user",
        },
        format="json",
    )
    assert response.status_code == HTTPStatus.CREATED
    assert ApiKey.objects.get().scope_list == ["read:users", "write:users"]
    empty = client_all.post(
        "/api/v1/api_keys",
        {"name": "k2", "api_id": api.id, "scope_ids": [], "user_id": user.public_id},
        format="json",
    )
    assert empty.status_code == HTTPStatus.CREATED


def test_expiry_is_honoured(database_path, client_all, create_body):
    soon = (timezone.now() + timedelta(days=1)).isoformat()
    response = client_all.post(
        "/api/v1/api_keys", {**create_body, "expires_at": soon}, format="json"
    )
    assert response.status_code == HTTPStatus.CREATED
    key_id, secret = response.json()["api_key"]["id"], response.json()["api_key"]["key"]
    assert verify(client_all, secret)["expires_at"] is not None
    ApiKey.objects.filter(pk=key_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = verify(client_all, secret)
    assert (
        result["code"] == "API_KEY_EXPIRED"
        and result["status"] == "expired"
        and result["key_id"] == key_id
    )
    assert client_all.get(f"/api/v1/api_keys/{key_id}").json()["api_key"]["status"] == "expired"


# ------------------------------------------------------------------ transport-level errors


def test_malformed_json_is_400(client_all):
    response = client_all.generic(
        "POST", "/api/v1/api_keys", "{not json", content_type="application/json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST and error_codes(response) == [
        "INVALID_JSON"
    ]


@pytest.mark.parametrize("payload", ["[]", '"text"', "42", "null"])
def test_json_that_is_not_an_object_is_400(client_all, payload):
    response = client_all.generic(
        "POST", "/api/v1/api_keys", payload, content_type="application/json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == ["INVALID_REQUEST"]


def test_nan_is_not_json(client_all):
    response = client_all.generic(
        "POST", "/api/v1/api_keys", '{"name": NaN}', content_type="application/json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST and error_codes(response) == [
        "INVALID_JSON"
    ]


def test_form_body_is_415(client_all):
    response = client_all.post("/api/v1/api_keys", {"name": "x"})  # multipart
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert error_codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]


def test_body_over_64_kib_is_413(client_all, create_body):
    big = json.dumps({**create_body, "name": "x" * (70 * 1024)})
    response = client_all.generic("POST", "/api/v1/api_keys", big, content_type="application/json")
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error_codes(response) == ["REQUEST_TOO_LARGE"]
    assert not ApiKey.objects.exists()


def test_wrong_method_is_405_in_json(client_all):
    response = client_all.patch("/api/v1/api_keys", {}, format="json")
    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert error_codes(response) == ["METHOD_NOT_ALLOWED"]


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v1/api_keys/", "/api/v1/apis/x/y/z/w", "/api/v1/"]
)
def test_unknown_routes_are_json_404(client_all, path):
    for method in ("get", "post", "delete"):
        response = getattr(client_all, method)(path)
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert response["Content-Type"] == "application/json"
        assert error_codes(response) == ["ROUTE_NOT_FOUND"]


def test_html_accept_header_still_gets_json(client_all):
    response = client_all.get("/api/v1/api_keys", HTTP_ACCEPT="text/html")
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("application/json")


# ------------------------------------------------------------------ list


def _issue(api, n, **owner):
    return [
        services.api_key_issue(
            name=f"k{i}", api=api, actor=services.Actor.system(), **owner
        ).api_key.id
        for i in range(n)
    ]


def test_list_walk_with_cursor_sees_every_key_once_newest_first(client_all, api, organization):
    ids = _issue(api, 7, organization=organization)
    seen, after, pages = [], None, 0
    while True:
        query = {"page_size": 3, **({"starting_after": after} if after else {})}
        body = client_all.get("/api/v1/api_keys", query).json()
        seen += [k["id"] for k in body["api_keys"]]
        pages += 1
        if pages == 2:  # keys added mid-walk come before the cursor: never seen twice
            _issue(api, 2, organization=organization)
        if not body["has_more"]:
            break
        after = body["api_keys"][-1]["id"]
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_list_filters(client_all, api, organization, user):
    org_ids = _issue(api, 2, organization=organization)
    user_ids = _issue(api, 1, user=user)
    other_api = ApiFactory()
    other_ids = _issue(other_api, 1, organization=OrganizationFactory())
    services.api_key_revoke(
        api_key=ApiKey.objects.get(pk=org_ids[0]), actor=services.Actor.system()
    )

    def ids(**query):
        response = client_all.get("/api/v1/api_keys", query)
        assert response.status_code == HTTPStatus.OK, response.content
        return {k["id"] for k in response.json()["api_keys"]}

    assert ids(key_type="user") == set(user_ids)
    assert ids(key_type="organization") == set(org_ids + other_ids)
    assert ids(org_code=organization.code) == set(org_ids)
    assert ids(user_id=user.public_id) == set(user_ids)
    assert ids(api_id=other_api.id) == set(other_ids)
    assert ids(status="revoked") == {org_ids[0]}
    assert ids(status="active") == {org_ids[1], *user_ids, *other_ids}
    assert ids(status="expired") == set()


@pytest.mark.parametrize(
    "query, code",
    [
        ({"page_size": "101"}, "PAGE_SIZE_LIMIT_EXCEEDED"),
        ({"page_size": "0"}, "INVALID_PAGE_SIZE"),
        ({"page_size": "ten"}, "INVALID_PAGE_SIZE"),
        ({"starting_after": "garbage"}, "INVALID_CURSOR"),
        ({"starting_after": ""}, "INVALID_CURSOR"),
        ({"status": "sleeping"}, "INVALID_FILTER"),
        ({"key_type": "team"}, "INVALID_FILTER"),
    ],
)
def test_bad_list_queries_are_400(client_all, query, code):
    response = client_all.get("/api/v1/api_keys", query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == [code]


def test_list_query_count_does_not_grow_with_keys(
    client_all, api, organization, django_assert_num_queries
):
    _issue(api, 3, organization=organization)
    with django_assert_num_queries(2):  # the token (not seen yet), the page
        client_all.get("/api/v1/api_keys")
    _issue(api, 30, organization=organization)
    with django_assert_num_queries(warm_token_queries() + 1):  # the token (seen), the page
        client_all.get("/api/v1/api_keys")


# ------------------------------------------------------------------ rotate and revoke


def test_rotate_with_grace_keeps_the_old_secret_valid(client_all, issued_key):
    response = client_all.put(
        f"/api/v1/api_keys/{issued_key.api_key.id}", {"expire_previous_in": 300}, format="json"
    )
    assert response.status_code == HTTPStatus.CREATED
    assert verify(client_all, issued_key.plaintext)["is_valid"]
    assert verify(client_all, response.json()["api_key"]["key"])["is_valid"]


@pytest.mark.parametrize("value", [-1, 604801, "60", 1.5, True, None])
def test_rotate_bad_grace_is_400_and_changes_nothing(client_all, issued_key, value):
    response = client_all.put(
        f"/api/v1/api_keys/{issued_key.api_key.id}", {"expire_previous_in": value}, format="json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert verify(client_all, issued_key.plaintext)["is_valid"]


def test_rotate_revoked_key_is_400_revoked(client_all, issued_key):
    client_all.delete(f"/api/v1/api_keys/{issued_key.api_key.id}")
    response = client_all.put(f"/api/v1/api_keys/{issued_key.api_key.id}", format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == ["API_KEY_REVOKED"]


def test_revoke_twice_is_not_an_error_and_the_key_stays_listable(client_all, issued_key):
    for _ in range(2):
        response = client_all.delete(f"/api/v1/api_keys/{issued_key.api_key.id}")
        assert response.status_code == HTTPStatus.OK
    listed = client_all.get("/api/v1/api_keys", {"status": "revoked"}).json()["api_keys"]
    assert [k["id"] for k in listed] == [issued_key.api_key.id]
    assert listed[0]["revoked_on"] is not None


# ------------------------------------------------------------------ verify


def test_verify_outcomes(client_all, issued_key, api):
    assert verify(client_all, issued_key.plaintext, audience=api.audience)["is_valid"]
    wrong = verify(client_all, issued_key.plaintext, audience="https://other")
    assert wrong["code"] == "API_KEY_WRONG_AUDIENCE" and wrong["key_id"] == issued_key.api_key.id
    for garbage in ("k_live_nope", "x", last_character_changed(issued_key.plaintext)):
        invalid = verify(client_all, garbage)
        assert (
            invalid["code"] == "API_KEY_INVALID"
            and invalid["key_id"] is None
            and invalid["status"] is None
        )
        assert invalid["is_valid"] is False


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "FIELD_REQUIRED"),
        ({"api_key": ""}, "INVALID_FIELD"),
        ({"api_key": 5}, "INVALID_FIELD"),
        ({"api_key": None}, "FIELD_REQUIRED"),
        ({"api_key": ["k"]}, "INVALID_FIELD"),
        ({"api_key": "k", "audience": 1}, "INVALID_FIELD"),
        ({"api_key": "k", "extra": 1}, "UNKNOWN_FIELD"),
    ],
)
def test_verify_bad_bodies_are_400(client_all, body, code):
    response = client_all.post("/api/v1/api_keys/verify", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == [code]


def test_verify_counts_ip_and_time(client_all, issued_key):
    client_all.post(
        "/api/v1/api_keys/verify",
        {"api_key": issued_key.plaintext},
        format="json",
        REMOTE_ADDR="198.51.100.4",
    )
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.verification_count == 1 and key.last_verified_ip == "198.51.100.4"


def test_verify_is_at_most_two_queries_including_the_token(
    database_path, client_all, issued_key, django_assert_max_num_queries
):
    from django.db import connection

    # The token, then the key: one statement that also counts the hour of usage history on
    # PostgreSQL (a data-modifying CTE); SQLite has none, so the hour is a second statement
    # in the same transaction (inside the test's transaction, that one is a savepoint: two
    # more statements here, none in production).
    with django_assert_max_num_queries(2 if connection.vendor == "postgresql" else 5):
        assert verify(client_all, issued_key.plaintext)["is_valid"]


def test_verify_accepts_read_or_verify_scope(make_client, issued_key):
    for scopes in (["verify:api_keys"], ["read:api_keys"]):
        assert verify(make_client(scopes), issued_key.plaintext)["is_valid"]


def test_failed_verifications_are_rate_limited_per_application_valid_keys_still_pass(
    make_client, issued_key, settings
):
    settings.APIKEYS = {**settings.APIKEYS, "VERIFY_FAILURE_LIMIT": 3, "VERIFY_FAILURE_WINDOW": 60}
    noisy, quiet = (
        make_client(["verify:api_keys"], name="noisy"),
        make_client(["verify:api_keys"], name="quiet"),
    )
    statuses = []
    for _ in range(5):
        response = noisy.post("/api/v1/api_keys/verify", {"api_key": "k_live_guess"}, format="json")
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429, 429]
    limited = noisy.post("/api/v1/api_keys/verify", {"api_key": "k_live_guess"}, format="json")
    assert error_codes(limited) == ["RATE_LIMITED"]
    assert (
        1 <= int(limited["Retry-After"]) <= 60
        and limited["RateLimit-Reset"] == limited["Retry-After"]
    )
    assert verify(noisy, issued_key.plaintext)["is_valid"]  # valid keys still verify
    assert (
        verify(quiet, "k_live_guess")["code"] == "API_KEY_INVALID"
    )  # another caller is not limited


@pytest.mark.parametrize("key", ["   ", " k_live_x ", "k_live_\x00", "x" * 5000])
def test_verify_checks_any_non_empty_string_as_sent_and_answers_200(client_all, key):
    # The key is compared, never stored: it is not trimmed and no character makes it a 400.
    response = client_all.post("/api/v1/api_keys/verify", {"api_key": key}, format="json")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["code"] == "API_KEY_INVALID"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"api_key": "k", "audience": ""}, "audience"),
        ({"api_key": "k", "audience": "a\x00"}, "audience"),
        ({"api_key": 5, "audience": 1}, "api_key"),
        ({"api_key": 5, "b": 1, "a" * 100: 1}, "a" * 64),
    ],
)
def test_verify_reports_one_problem_at_a_time(client_all, body, field):
    response = client_all.post("/api/v1/api_keys/verify", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_list_filters_report_one_problem_at_a_time(client_all):
    response = client_all.get("/api/v1/api_keys", {"key_type": "team", "status": ""})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("INVALID_FILTER", "key_type")
    ]
