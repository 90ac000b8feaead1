"""APIs, scopes, organizations, users, roles and portal links over the Management API."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from apikeys import services
from apikeys.models import Api, Membership, Organization, Role, Scope
from tests.api.conftest import error_codes
from tests.factories import ApiFactory, OrganizationFactory, ScopeFactory, UserFactory

pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------ APIs


def test_api_create_get_list_delete(client_all):
    created = client_all.post(
        "/api/v1/apis", {"name": "Orders", "audience": "https://orders"}, format="json"
    )
    assert created.status_code == HTTPStatus.CREATED
    api_id = created.json()["api"]["id"]
    ScopeFactory(api=Api.objects.get(pk=api_id), key="read:orders", description="Read")
    detail = client_all.get(f"/api/v1/apis/{api_id}").json()
    assert detail["code"] == "OK"
    assert detail["api"]["audience"] == "https://orders" and detail["api"]["name"] == "Orders"
    assert detail["api"]["created_on"].endswith("+00:00")
    assert [(x["key"], x["description"]) for x in detail["api"]["scopes"]] == [
        ("read:orders", "Read")
    ]
    listed = client_all.get("/api/v1/apis").json()
    assert [a["id"] for a in listed["apis"]] == [api_id] and listed["has_more"] is False
    deleted = client_all.delete(f"/api/v1/apis/{api_id}")
    assert deleted.status_code == HTTPStatus.OK and deleted.json() == {
        "code": "OK",
        "message": "Success",
    }
    assert not Api.objects.filter(pk=api_id).exists()


def test_duplicate_audience_is_409(client_all, api):
    response = client_all.post(
        "/api/v1/apis", {"name": "Again", "audience": api.audience}, format="json"
    )
    assert response.status_code == HTTPStatus.CONFLICT and error_codes(response) == [
        "AUDIENCE_TAKEN"
    ]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"name": "x"}, "FIELD_REQUIRED"),
        ({"name": 1, "audience": "a"}, "INVALID_FIELD"),
        ({"name": "x" * 65, "audience": "a"}, "INVALID_FIELD"),
        ({"name": "x", "audience": "a", "id": "abc"}, "UNKNOWN_FIELD"),
    ],
)
def test_api_create_bad_input(client_all, body, code):
    response = client_all.post("/api/v1/apis", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST and code in error_codes(response)
    assert not Api.objects.exists()


def test_api_in_use_by_active_keys_cannot_be_deleted(client_all, issued_key, api):
    response = client_all.delete(f"/api/v1/apis/{api.id}")
    assert response.status_code == HTTPStatus.CONFLICT and error_codes(response) == ["API_IN_USE"]
    client_all.delete(f"/api/v1/api_keys/{issued_key.api_key.id}")
    assert client_all.delete(f"/api/v1/apis/{api.id}").status_code == HTTPStatus.OK
    key = client_all.get(f"/api/v1/api_keys/{issued_key.api_key.id}").json()["api_key"]
    assert key["api_ids"] == [api.id] and key["scopes"] == ["read:users", "write:users"]


@pytest.mark.parametrize("api_id", ["0" * 32, "nope", "api_key_" + "0" * 32])
def test_unknown_api_in_path_is_404(client_all, api_id):
    for method, path in [("get", ""), ("delete", ""), ("get", "/scopes"), ("post", "/scopes")]:
        body = {"key": "a"} if method == "post" else None  # (a GET's data would be its query)
        response = getattr(client_all, method)(f"/api/v1/apis/{api_id}{path}", body, format="json")
        assert response.status_code == HTTPStatus.NOT_FOUND and error_codes(response) == [
            "API_NOT_FOUND"
        ]


# ------------------------------------------------------------------ scopes


def test_scope_create_get_patch_delete(client_all, api):
    created = client_all.post(
        f"/api/v1/apis/{api.id}/scopes",
        {"key": "read:orders", "description": "Read"},
        format="json",
    )
    assert created.status_code == HTTPStatus.CREATED and created.json()["code"] == "SCOPE_CREATED"
    scope_id = created.json()["scope"]["id"]
    base = f"/api/v1/apis/{api.id}/scopes/{scope_id}"
    assert client_all.get(base).json()["scope"] == {
        "id": scope_id,
        "key": "read:orders",
        "description": "Read",
    }
    assert (
        client_all.patch(base, {"description": "Read all orders"}, format="json").status_code
        == HTTPStatus.OK
    )
    assert Scope.objects.get(pk=scope_id).description == "Read all orders"
    refused = client_all.patch(base, {"key": "write:orders", "description": "x"}, format="json")
    assert refused.status_code == HTTPStatus.BAD_REQUEST and error_codes(refused) == [
        "FIELD_NOT_UPDATABLE"
    ]
    assert Scope.objects.get(pk=scope_id).key == "read:orders"
    listed = client_all.get(f"/api/v1/apis/{api.id}/scopes").json()
    assert [x["id"] for x in listed["scopes"]] == [scope_id]
    assert client_all.delete(base).status_code == HTTPStatus.OK
    assert not Scope.objects.filter(pk=scope_id).exists()


def test_scope_key_rules(client_all, api, read_users):
    taken = client_all.post(f"/api/v1/apis/{api.id}/scopes", {"key": "read:users"}, format="json")
    assert taken.status_code == HTTPStatus.CONFLICT and error_codes(taken) == ["SCOPE_KEY_TAKEN"]
    spaced = client_all.post(f"/api/v1/apis/{api.id}/scopes", {"key": "read users"}, format="json")
    assert spaced.status_code == HTTPStatus.BAD_REQUEST
    assert Scope.objects.filter(api=api).count() == 1


def test_scope_of_another_api_in_path_is_404(client_all, api):
    foreign = ScopeFactory(api=ApiFactory())
    response = client_all.get(f"/api/v1/apis/{api.id}/scopes/{foreign.id}")
    assert response.status_code == HTTPStatus.NOT_FOUND and error_codes(response) == [
        "SCOPE_NOT_FOUND"
    ]
    assert (
        client_all.delete(f"/api/v1/apis/{api.id}/scopes/{foreign.id}").status_code
        == HTTPStatus.NOT_FOUND
    )
    assert Scope.objects.filter(pk=foreign.pk).exists()


def test_scope_in_use_is_409(client_all, issued_key, api, read_users):
    response = client_all.delete(f"/api/v1/apis/{api.id}/scopes/{read_users.id}")
    assert response.status_code == HTTPStatus.CONFLICT and error_codes(response) == ["SCOPE_IN_USE"]


# ------------------------------------------------------------------ organizations


def test_organization_create_get_update_list(client_all):
    created = client_all.post(
        "/api/v1/organization", {"name": "Acme", "code": "org_acme"}, format="json"
    )
    assert created.status_code == HTTPStatus.CREATED
    assert created.json() == {
        "code": "OK",
        "message": "Organization created",
        "organization": {"code": "org_acme"},
    }
    got = client_all.get("/api/v1/organization", {"code": "org_acme"}).json()["organization"]
    assert (
        got["code"] == "org_acme" and got["name"] == "Acme" and got["created_on"].endswith("+00:00")
    )
    assert (
        client_all.patch(
            "/api/v1/organization/org_acme", {"name": "Acme Inc"}, format="json"
        ).status_code
        == 200
    )
    assert Organization.objects.get(code="org_acme").name == "Acme Inc"
    generated = client_all.post("/api/v1/organization", {"name": "Beta"}, format="json").json()
    listed = client_all.get("/api/v1/organizations", {"page_size": 1}).json()
    assert listed["organizations"][0]["code"] == generated["organization"]["code"]
    assert listed["has_more"] is True
    rest = client_all.get(
        "/api/v1/organizations", {"starting_after": generated["organization"]["code"]}
    ).json()
    assert [o["code"] for o in rest["organizations"]] == ["org_acme"]


def test_organization_errors(client_all, organization):
    taken = client_all.post(
        "/api/v1/organization", {"name": "X", "code": organization.code}, format="json"
    )
    assert taken.status_code == HTTPStatus.CONFLICT and error_codes(taken) == [
        "ORGANIZATION_CODE_TAKEN"
    ]
    bad_code = client_all.post(
        "/api/v1/organization", {"name": "X", "code": "Acme!"}, format="json"
    )
    assert bad_code.status_code == HTTPStatus.BAD_REQUEST
    missing = client_all.get("/api/v1/organization", {"code": "org_nothing"})
    assert missing.status_code == HTTPStatus.NOT_FOUND and error_codes(missing) == [
        "ORGANIZATION_NOT_FOUND"
    ]
    no_code = client_all.get("/api/v1/organization")
    assert no_code.status_code == HTTPStatus.BAD_REQUEST
    bad_cursor = client_all.get("/api/v1/organizations", {"starting_after": "org_nothing"})
    assert error_codes(bad_cursor) == ["INVALID_CURSOR"]


def test_organization_users_add_and_list(client_all, organization):
    role = services.role_create(key="key-admin", name="Key admin", actor=services.Actor.system())
    ada, bob = UserFactory(), UserFactory()
    response = client_all.post(
        f"/api/v1/organizations/{organization.code}/users",
        {"users": [{"id": ada.public_id, "roles": ["key-admin"]}, {"id": bob.public_id}]},
        format="json",
    )
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["users_added"] == [ada.public_id, bob.public_id]
    listed = client_all.get(f"/api/v1/organizations/{organization.code}/users").json()
    by_id = {u["id"]: u for u in listed["users"]}
    assert by_id[ada.public_id]["roles"] == ["key-admin"] and by_id[bob.public_id]["roles"] == []
    assert by_id[ada.public_id]["email"] == ada.email
    assert Membership.objects.get(user=ada).roles.get() == role


@pytest.mark.parametrize(
    "users, code",
    [
        ([{"id": "kp_" + "0" * 32}], "USER_NOT_FOUND"),
        ([{"id": "VALID", "roles": ["no-such-role"]}], "ROLE_NOT_FOUND"),
        ([], "INVALID_FIELD"),
        ("nope", "INVALID_FIELD"),
    ],
)
def test_organization_users_bad_input_adds_nobody(client_all, organization, users, code):
    valid = UserFactory()
    if isinstance(users, list):
        users = [{**u, "id": valid.public_id if u["id"] == "VALID" else u["id"]} for u in users]
    response = client_all.post(
        f"/api/v1/organizations/{organization.code}/users", {"users": users}, format="json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST and code in error_codes(response)
    assert not Membership.objects.exists()


def test_unknown_organization_in_path_is_404(client_all):
    for method in ("get", "post"):
        response = getattr(client_all, method)(
            "/api/v1/organizations/org_nothing/users", {"users": []}, format="json"
        )
        assert response.status_code == HTTPStatus.NOT_FOUND and error_codes(response) == [
            "ORGANIZATION_NOT_FOUND"
        ]


# ------------------------------------------------------------------ users


def test_user_create_get_list(client_all):
    created = client_all.post(
        "/api/v1/user",
        {"email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace"},
        format="json",
    )
    assert created.status_code == HTTPStatus.CREATED
    user_id = created.json()["id"]
    assert created.json() == {"id": user_id, "created": True} and user_id.startswith("kp_")
    got = client_all.get("/api/v1/user", {"id": user_id}).json()
    assert got["email"] == "ada@example.com" and got["full_name"] == "Ada Lovelace"
    UserFactory(email="other@example.com")
    by_email = client_all.get("/api/v1/users", {"email": "ADA@example.com"}).json()
    assert [u["id"] for u in by_email["users"]] == [user_id]
    assert len(client_all.get("/api/v1/users").json()["users"]) == 2


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"email": "not-an-email"}, 400, "INVALID_EMAIL"),
        ({"email": 5}, 400, "INVALID_FIELD"),
        ({}, 400, "FIELD_REQUIRED"),
        ({"email": "taken@example.com"}, 409, "EMAIL_TAKEN"),
    ],
)
def test_user_create_errors(client_all, body, status, code):
    UserFactory(email="taken@example.com", username="taken@example.com")
    response = client_all.post("/api/v1/user", body, format="json")
    assert response.status_code == status and error_codes(response) == [code]


def test_unknown_user_is_404(client_all):
    assert (
        client_all.get("/api/v1/user", {"id": "kp_" + "0" * 32}).status_code == HTTPStatus.NOT_FOUND
    )


# ------------------------------------------------------------------ roles and permissions


def test_roles_and_system_permissions(client_all):
    created = client_all.post(
        "/api/v1/roles",
        {"name": "Key admin", "key": "key-admin", "description": "Manages keys"},
        format="json",
    )
    assert created.status_code == HTTPStatus.CREATED and created.json()["code"] == "ROLE_CREATED"
    role_id = created.json()["role"]["id"]
    listed = client_all.get("/api/v1/roles").json()["roles"]
    assert listed == [
        {"id": role_id, "key": "key-admin", "name": "Key admin", "description": "Manages keys"}
    ]
    perms = client_all.get("/api/v1/system_permissions").json()["system_permissions"]
    assert {p["key"] for p in perms} >= {"read:org:authentication", "write:org:authentication"}
    patched = client_all.patch(
        f"/api/v1/roles/{role_id}/system_permissions",
        {
            "system_permissions": [
                {"key": "read:org:authentication"},
                {"key": "write:org:authentication"},
            ]
        },
        format="json",
    )
    assert patched.status_code == HTTPStatus.OK
    role = Role.objects.get(pk=role_id)
    assert set(role.system_permissions.values_list("key", flat=True)) == {
        "read:org:authentication",
        "write:org:authentication",
    }
    client_all.patch(
        f"/api/v1/roles/{role_id}/system_permissions",
        {"system_permissions": [{"key": "write:org:authentication", "operation": "delete"}]},
        format="json",
    )
    assert list(role.system_permissions.values_list("key", flat=True)) == [
        "read:org:authentication"
    ]


def test_role_errors(client_all):
    services.role_create(key="viewer", name="Viewer", actor=services.Actor.system())
    taken = client_all.post("/api/v1/roles", {"name": "V", "key": "viewer"}, format="json")
    assert taken.status_code == HTTPStatus.CONFLICT and error_codes(taken) == ["ROLE_KEY_TAKEN"]
    missing = client_all.patch(
        "/api/v1/roles/" + "0" * 32 + "/system_permissions",
        {"system_permissions": [{"key": "x"}]},
        format="json",
    )
    assert missing.status_code == HTTPStatus.NOT_FOUND and error_codes(missing) == [
        "ROLE_NOT_FOUND"
    ]
    role = Role.objects.get()
    unknown = client_all.patch(
        f"/api/v1/roles/{role.id}/system_permissions",
        {"system_permissions": [{"key": "root"}]},
        format="json",
    )
    assert unknown.status_code == HTTPStatus.BAD_REQUEST
    bad_op = client_all.patch(
        f"/api/v1/roles/{role.id}/system_permissions",
        {"system_permissions": [{"key": "read:org:authentication", "operation": "explode"}]},
        format="json",
    )
    assert bad_op.status_code == HTTPStatus.BAD_REQUEST
    assert not role.system_permissions.exists()


# ------------------------------------------------------------------ portal links


def test_generate_portal_url(client_all, user, organization):
    services.membership_add(organization=organization, user=user, actor=services.Actor.system())
    response = client_all.post(
        "/api/v1/portal/generate_url",
        {
            "user_id": user.public_id,
            "organization_code": organization.code,
            "sub_nav": "organization_api_keys",
        },
        format="json",
    )
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["url"].startswith("http://testserver/portal/")
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "change, code",
    [
        ({"user_id": "kp_" + "0" * 32}, "USER_NOT_FOUND"),
        ({"organization_code": "org_nothing"}, "ORGANIZATION_NOT_FOUND"),
        ({"organization_code": "OTHER"}, "USER_NOT_IN_ORGANIZATION"),
        ({"return_url": "javascript:alert(1)"}, "INVALID_RETURN_URL"),
        ({"return_url": "https://evil.example.net/"}, "INVALID_RETURN_URL"),
        ({"user_id": 5}, "INVALID_FIELD"),
    ],
)
def test_generate_portal_url_errors(client_all, user, change, code):
    other = OrganizationFactory()
    body = {"user_id": user.public_id, **change}
    if body.get("organization_code") == "OTHER":
        body["organization_code"] = other.code
    response = client_all.post("/api/v1/portal/generate_url", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert error_codes(response) == [code]


def test_a_constraint_broken_by_a_concurrent_change_is_409_and_never_quotes_the_row(
    client_all, monkeypatch, caplog
):
    """What a service could not foresee (a concurrent write between its check and its own)
    is a 409 that says to retry, not a 500; the database's message, which quotes column
    values, reaches neither the caller nor the log."""
    from django.db import IntegrityError

    leaked = "Key (audience)=(https://orders-7c1f) already exists"

    def clash(**_: object) -> None:
        raise IntegrityError(f"duplicate key value violates unique constraint. DETAIL: {leaked}")

    monkeypatch.setattr(services, "api_create", clash)
    response = client_all.post(
        "/api/v1/apis", {"name": "Orders", "audience": "https://orders"}, format="json"
    )
    assert response.status_code == HTTPStatus.CONFLICT and error_codes(response) == ["CONFLICT"]
    assert "orders-7c1f" not in response.content.decode()
    assert "orders-7c1f" not in caplog.text and "IntegrityError" in caplog.text
