"""Tenant isolation: every object an outsider could name × every outside caller × every
operation, through the Management API, the portal and the admin. Every cell gets its
expected refusal, and the database is exactly as it was after each one.

The victim is Acme: its organization key, the personal key of its member Ada, its API and
scopes, its memberships and roles, its audit events and a portal link for Ada. The callers:

- an M2M application without the operation's scope (the API's only kind of caller);
- anonymous (no credentials), and credentials of the wrong kind (an API key or a portal
  session where an M2M token is expected, an M2M token where a session is expected);
- Eve, who writes keys in another organization (Globex);
- Mallory, a member of Acme whose role grants neither read nor write;
- Rita, a member of Acme who may read its keys but not change them;
- staff members without the admin permission, or with "view" only.

Each door's test walks its whole matrix and lists every cell that misbehaved, so one run
shows them all; the number of cells checked is asserted too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import MANAGEMENT_SCOPES, ApiKey, AuditEvent, SystemPermission
from portal.models import PortalLink
from portal.services import portal_link_create
from tests.factories import UserFactory
from tests.portal.helpers import grant_form_token
from tests.security.conftest import token_for

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()
READ = SystemPermission.READ_ORG_AUTHENTICATION
WRITE = SystemPermission.WRITE_ORG_AUTHENTICATION


def database_state() -> str:
    """A fingerprint of every row of every table but the sessions (a signed-in caller's
    session is theirs to change)."""
    digest = hashlib.sha256()
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            if table == "django_session":
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
            digest.update(f"{table}:{rows}".encode())
    return digest.hexdigest()


@dataclass
class Victim:
    api: Any
    scope: Any
    acme: Any
    ada: Any
    role: Any
    org_key: ApiKey
    personal_key: ApiKey
    key_plaintext: str
    link_token: str
    used_link_token: str


def role_with(key: str, *permissions: str) -> Any:
    role = services.role_create(key=key, name=key, actor=SYSTEM)
    if permissions:
        services.role_change_permissions(role=role, add=list(permissions), actor=SYSTEM)
    return role


def member(organization: Any, role: Any, **fields: Any) -> Any:
    person = UserFactory(**fields)
    services.membership_add(organization=organization, user=person, roles=[role], actor=SYSTEM)
    return person


@pytest.fixture
def victim(db: Any) -> Victim:
    api = services.api_create(name="Orders", audience="https://orders.example.com", actor=SYSTEM)
    scope = services.scope_create(api=api, key="read:orders", actor=SYSTEM)
    acme = services.organization_create(name="Acme", actor=SYSTEM)
    writer = role_with("acme-writer", READ, WRITE)
    ada = member(acme, writer, first_name="Ada")
    org_key = services.api_key_issue(
        name="Acme backend", api=api, scopes=[scope], organization=acme, actor=SYSTEM
    )
    personal = services.api_key_issue(
        name="Ada's key", api=api, scopes=[scope], user=ada, actor=SYSTEM
    )

    def link() -> str:
        url = portal_link_create(
            user=ada, organization=acme, base_url="http://testserver", actor=SYSTEM
        )
        return url.rstrip("/").rsplit("/", 1)[1]

    used = link()
    Client().post(f"/portal/link/{used}/")
    return Victim(
        api,
        scope,
        acme,
        ada,
        writer,
        org_key.api_key,
        personal.api_key,
        org_key.plaintext,
        link(),
        used,
    )


@dataclass
class Cell:
    door: str
    target: str
    operation: str
    caller: str
    expected: Any
    got: Any = None

    def __str__(self) -> str:
        return f"{self.door} | {self.target} | {self.operation} | {self.caller}: expected {self.expected}, got {self.got}"


class Matrix:
    """Runs cells, each followed by a check that nothing changed."""

    def __init__(self) -> None:
        self.cells: list[Cell] = []
        self.wrong: list[Cell] = []
        self.state = database_state()

    def check(self, cell: Cell, answer: Any) -> None:
        self.cells.append(cell)
        cell.got = answer
        if not (cell.expected(answer) if callable(cell.expected) else answer == cell.expected):
            self.wrong.append(cell)
        now = database_state()
        if now != self.state:
            cell.got = f"{answer} AND THE DATABASE CHANGED"
            self.wrong.append(cell)
            self.state = now


# --------------------------------------------------------------------------- the API


API_OPERATIONS = [
    ("api key", "list", "get", "/api/v1/api_keys", ["read:api_keys"]),
    ("api key", "create", "post", "/api/v1/api_keys", ["create:api_keys"]),
    ("api key", "read", "get", "/api/v1/api_keys/{key_id}", ["read:api_keys"]),
    ("api key", "rotate", "put", "/api/v1/api_keys/{key_id}", ["update:api_keys"]),
    ("api key", "revoke", "delete", "/api/v1/api_keys/{key_id}", ["delete:api_keys"]),
    ("api key", "verify", "post", "/api/v1/api_keys/verify", ["verify:api_keys", "read:api_keys"]),
    ("api", "list", "get", "/api/v1/apis", ["read:apis"]),
    ("api", "create", "post", "/api/v1/apis", ["create:apis"]),
    ("api", "read", "get", "/api/v1/apis/{api_id}", ["read:apis"]),
    ("api", "delete", "delete", "/api/v1/apis/{api_id}", ["delete:apis"]),
    ("scope", "list", "get", "/api/v1/apis/{api_id}/scopes", ["read:api_scopes"]),
    ("scope", "create", "post", "/api/v1/apis/{api_id}/scopes", ["create:api_scopes"]),
    ("scope", "read", "get", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["read:api_scopes"]),
    ("scope", "update", "patch", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["update:api_scopes"]),
    ("scope", "delete", "delete", "/api/v1/apis/{api_id}/scopes/{scope_id}", ["delete:api_scopes"]),
    ("organization", "create", "post", "/api/v1/organization", ["create:organizations"]),
    ("organization", "read", "get", "/api/v1/organization?code={org_code}", ["read:organizations"]),
    (
        "organization",
        "update",
        "patch",
        "/api/v1/organization/{org_code}",
        ["update:organizations"],
    ),
    ("organization", "list", "get", "/api/v1/organizations", ["read:organizations"]),
    ("membership", "list", "get", "/api/v1/organizations/{org_code}/users", ["read:organizations"]),
    (
        "membership",
        "add",
        "post",
        "/api/v1/organizations/{org_code}/users",
        ["update:organizations"],
    ),
    (
        "key policy",
        "read",
        "get",
        "/api/v1/organizations/{org_code}/api_key_policy",
        ["read:organizations"],
    ),
    (
        "key policy",
        "set",
        "put",
        "/api/v1/organizations/{org_code}/api_key_policy",
        ["update:organizations"],
    ),
    ("user", "create", "post", "/api/v1/user", ["create:users"]),
    ("user", "read", "get", "/api/v1/user?id={user_id}", ["read:users"]),
    ("user", "list", "get", "/api/v1/users", ["read:users"]),
    ("role", "list", "get", "/api/v1/roles", ["read:roles"]),
    ("role", "create", "post", "/api/v1/roles", ["create:roles"]),
    ("role", "update", "patch", "/api/v1/roles/{role_id}/system_permissions", ["update:roles"]),
    ("role", "list permissions", "get", "/api/v1/system_permissions", ["read:roles"]),
    ("portal link", "create", "post", "/api/v1/portal/generate_url", ["create:portal_links"]),
]


def api_bodies(v: Victim) -> dict[tuple[str, str], Any]:
    """Bodies that would succeed for a caller allowed to make them: refused for what the
    caller is, not for what it sent."""
    return {
        ("api key", "create"): {"name": "Planted", "api_id": v.api.id, "org_code": v.acme.code},
        ("api key", "rotate"): {},
        ("api key", "verify"): {"api_key": v.key_plaintext},
        ("api", "create"): {"name": "Planted", "audience": "https://planted.example"},
        ("scope", "create"): {"key": "planted:scope"},
        ("scope", "update"): {"description": "Planted"},
        ("organization", "create"): {"name": "Planted"},
        ("organization", "update"): {"name": "Planted"},
        ("membership", "add"): {"users": [{"id": v.ada.public_id, "roles": []}]},
        ("key policy", "set"): {"max_lifetime_days": 1, "max_active_keys": 1, "max_idle_days": 1},
        ("user", "create"): {"email": "planted@example.com"},
        ("role", "create"): {"name": "Planted", "key": "planted"},
        ("role", "update"): {"system_permissions": [{"key": WRITE, "operation": "delete"}]},
        ("portal link", "create"): {"user_id": v.ada.public_id, "organization_code": v.acme.code},
    }


def test_api_cells_refuse_every_outside_caller_and_change_nothing(victim: Victim) -> None:
    v = victim
    ids = {
        "key_id": v.org_key.id,
        "api_id": v.api.id,
        "scope_id": v.scope.id,
        "org_code": v.acme.code,
        "user_id": v.ada.public_id,
        "role_id": v.role.id,
    }
    bodies = api_bodies(v)
    eve = UserFactory()
    without_scope: dict[tuple[str, ...], APIClient] = {}
    for *_, allowed in API_OPERATIONS:
        if tuple(allowed) not in without_scope:
            _, _, token = token_for(
                [s for s in MANAGEMENT_SCOPES if s not in allowed], name="Outsider"
            )
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            without_scope[tuple(allowed)] = client

    def session_of(person: Any) -> APIClient:
        client = APIClient()
        client.force_login(person)
        return client

    def bearer(value: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {value}")
        return client

    # Every caller is signed in before the first cell: signing in writes last_login.
    unauthenticated = {
        "anonymous": APIClient(),
        "an API key instead of a token": bearer(v.key_plaintext),
        "a made-up token": bearer("not-a-token-" + "x" * 30),
        "a portal session (Eve)": session_of(eve),
        "a portal session (Ada, of Acme)": session_of(v.ada),
        "an admin session (superuser)": session_of(UserFactory(is_staff=True, is_superuser=True)),
    }
    _, _, token = token_for(sorted(MANAGEMENT_SCOPES), name="Platform")
    platform = bearer(token)
    matrix = Matrix()
    for target, operation, method, template, allowed in API_OPERATIONS:
        path = template.format(**ids)
        body = bodies.get((target, operation))

        def call(
            client: APIClient, method: str = method, path: str = path, body: Any = body
        ) -> Any:
            response = getattr(client, method)(path, body, format="json")
            codes = [e["code"] for e in response.json().get("errors", [])]
            return response.status_code, codes

        matrix.check(
            Cell(
                "api",
                target,
                operation,
                "an M2M application without the scope",
                (403, ["INSUFFICIENT_SCOPE"]),
            ),
            call(without_scope[tuple(allowed)]),
        )
        for caller, client in unauthenticated.items():
            matrix.check(
                Cell(
                    "api",
                    target,
                    operation,
                    caller,
                    lambda got: got[0] == HTTPStatus.UNAUTHORIZED and len(got[1]) == 1,
                ),
                call(client),
            )
    # An M2M application with every scope still cannot make a portal link into an
    # organization for a user who is not its member.
    refused = platform.post(
        "/api/v1/portal/generate_url",
        {"user_id": eve.public_id, "organization_code": v.acme.code},
        format="json",
    )
    matrix.check(
        Cell(
            "api",
            "portal link",
            "create for a non-member",
            "an M2M application with the scope",
            (400, ["USER_NOT_IN_ORGANIZATION"]),
        ),
        (refused.status_code, [e["code"] for e in refused.json()["errors"]]),
    )

    assert [str(c) for c in matrix.wrong] == []
    assert len(matrix.cells) == len(API_OPERATIONS) * (1 + len(unauthenticated)) + 1
    print(f"\nisolation, API: {len(matrix.cells)} cells")


# --------------------------------------------------------------------------- the portal


LOGIN = "/portal/login/"


def test_portal_cells_refuse_every_outside_caller_and_change_nothing(victim: Victim) -> None:
    v = victim
    globex = services.organization_create(name="Globex", actor=SYSTEM)
    eve = member(globex, role_with("globex-writer", READ, WRITE), first_name="Eve")
    services.api_key_issue(name="Eve's own", api=v.api, organization=globex, actor=SYSTEM)
    mallory = member(v.acme, role_with("acme-nothing"), first_name="Mallory")
    rita = member(v.acme, role_with("acme-reader", READ), first_name="Rita")
    _, _, m2m_token = token_for(sorted(MANAGEMENT_SCOPES), name="Platform")

    def signed_in(person: Any) -> Client:
        client = Client()
        client.force_login(person)
        return client

    # Every caller is signed in before the first cell: signing in writes last_login.
    callers: dict[str, Client] = {
        "anonymous": Client(),
        "an M2M token instead of a session": Client(HTTP_AUTHORIZATION=f"Bearer {m2m_token}"),
        "Eve (writer in another organization)": signed_in(eve),
        "Mallory (Acme member, no read or write)": signed_in(mallory),
        "Rita (Acme member, read only)": signed_in(rita),
    }
    org, key, mine = v.acme.code, v.org_key.pk, v.personal_key.pk
    # (target, operation, method, path, data)
    requests: list[tuple[str, str, str, str, dict[str, Any] | None]] = [
        ("organization key", "read", "get", f"/portal/keys/{key}/", None),
        ("organization key", "rotate page", "get", f"/portal/keys/{key}/rotate/", None),
        (
            "organization key",
            "rotate",
            "post",
            f"/portal/keys/{key}/rotate/",
            {"grace_seconds": "0"},
        ),
        ("organization key", "revoke page", "get", f"/portal/keys/{key}/revoke/", None),
        ("organization key", "revoke", "post", f"/portal/keys/{key}/revoke/", {}),
        ("Ada's personal key", "read", "get", f"/portal/keys/{mine}/", None),
        (
            "Ada's personal key",
            "rotate",
            "post",
            f"/portal/keys/{mine}/rotate/",
            {"grace_seconds": "0"},
        ),
        ("Ada's personal key", "revoke", "post", f"/portal/keys/{mine}/revoke/", {}),
        ("organization", "list keys", "get", f"/portal/orgs/{org}/keys/", None),
        ("organization", "create page", "get", f"/portal/orgs/{org}/keys/new/", None),
        (
            "organization",
            "create key",
            "post",
            f"/portal/orgs/{org}/keys/new/",
            {"name": "Planted", "api": v.api.id},
        ),
        ("membership", "list", "get", f"/portal/orgs/{org}/members/", None),
        ("role", "read", "get", f"/portal/roles/{v.role.id}/", None),
        ("api", "read", "get", f"/portal/apis/{v.api.id}/", None),
        ("scope", "read", "get", f"/portal/apis/{v.api.id}/scopes/{v.scope.id}/", None),
        ("audit event", "list", "get", f"/portal/orgs/{org}/audit/", None),
        ("portal link (used)", "confirm", "post", f"/portal/link/{v.used_link_token}/", {}),
        (
            "portal link (tampered)",
            "confirm",
            "post",
            f"/portal/link/{v.link_token[:-1]}{'A' if v.link_token[-1] != 'A' else 'B'}/",
            {},
        ),
    ]
    not_routed = {"membership", "role", "api", "scope", "audit event"}

    def expected(caller: str, target: str, operation: str) -> Any:
        if target in not_routed:
            return 404
        if target.startswith("portal link"):
            return (302, LOGIN)
        if caller in ("anonymous", "an M2M token instead of a session"):
            return (302, LOGIN)
        if caller.startswith("Rita") and target != "Ada's personal key":
            return 200 if operation in ("read", "list keys") else 403
        return 404

    matrix = Matrix()
    for caller, client in callers.items():
        for target, operation, method, path, data in requests:
            if data is not None and method == "post" and "/link/" not in path:
                data = (
                    {**data, "form_token": grant_form_token(client)}
                    if "_auth_user_id" in client.session
                    else data
                )
            response = client.post(path, data) if method == "post" else client.get(path)
            got: Any = response.status_code
            if response.status_code == 302:
                got = (302, response["Location"].split("?")[0])
            if isinstance(expected(caller, target, operation), int) and response.status_code == 302:
                got = (302, response["Location"])
            matrix.check(
                Cell("portal", target, operation, caller, expected(caller, target, operation)), got
            )
            # Nobody was signed in as Ada by a refused link.
            assert client.session.get("_auth_user_id") != str(v.ada.pk)

    assert [str(c) for c in matrix.wrong] == []
    assert len(matrix.cells) == len(callers) * len(requests)
    assert PortalLink.objects.get(
        digest__isnull=False, used_at__isnull=True
    )  # the good link, untouched
    print(f"\nisolation, portal: {len(matrix.cells)} cells")


# --------------------------------------------------------------------------- the admin


def admin_urls(v: Victim) -> list[tuple[str, str, str, str]]:
    """(model, operation, method, url) for every registered model and every URL the admin
    has for it, on an existing object (the victim's where it owns one)."""
    objects = {
        ApiKey: v.org_key,
        type(v.acme): v.acme,
        type(v.ada): v.ada,
        type(v.role): v.role,
        type(v.api): v.api,
        AuditEvent: AuditEvent.objects.filter(org_code=v.acme.code).first(),
        PortalLink: PortalLink.objects.first(),
    }
    found = []
    for model in admin.site._registry:
        obj = objects.get(model) or model._default_manager.first()
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        name = model._meta.verbose_name
        found.append((name, "list", "get", reverse(f"{info}_changelist")))
        found.append((name, "add page", "get", reverse(f"{info}_add")))
        found.append((name, "add", "post", reverse(f"{info}_add")))
        if obj is None:
            continue
        for view in (
            "change",
            "history",
            "delete",
            *(("rotate", "revoke") if model is ApiKey else ()),
        ):
            url = reverse(f"{info}_{view}", args=[quote(obj.pk)])
            found.append((name, f"{view} page", "get", url))
            if view != "history":
                found.append((name, view, "post", url))
        if model is ApiKey:
            found.append((name, "revoke selected", "post", reverse(f"{info}_changelist")))
    return found


ADMIN_POST = {"post": "yes", "name": "Planted", "grace_seconds": "0", "apply": "1"}


def test_admin_cells_refuse_every_outside_caller_and_change_nothing(victim: Victim) -> None:
    v = victim
    _, _, m2m_token = token_for(sorted(MANAGEMENT_SCOPES), name="Platform")
    eve = UserFactory(first_name="Eve")
    no_permission = UserFactory(is_staff=True, first_name="Sam")
    view_only = UserFactory(is_staff=True, first_name="Victor")
    view_only.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))

    def signed_in(person: Any) -> Client:
        client = Client()
        client.force_login(person)
        return client

    # Every caller is signed in before the first cell: signing in writes last_login.
    callers: dict[str, Client] = {
        "anonymous": Client(),
        "an M2M token instead of a session": Client(HTTP_AUTHORIZATION=f"Bearer {m2m_token}"),
        "a customer (not staff), Eve": signed_in(eve),
        "a customer (not staff), Ada of Acme": signed_in(v.ada),
        "staff without permissions": signed_in(no_permission),
        "staff who may only view": signed_in(view_only),
    }
    urls = admin_urls(v)

    def expected(caller: str, operation: str, method: str) -> Any:
        if not caller.startswith("staff"):
            return (302, "/admin/login/")
        if (
            caller == "staff who may only view"
            and method == "get"
            and operation in ("list", "change page", "history page")
        ):
            return 200
        return 403

    matrix = Matrix()
    for caller, client in callers.items():
        for model, operation, method, url in urls:
            data = {**ADMIN_POST}
            if operation == "revoke selected":
                data = {
                    "action": "revoke_selected",
                    "_selected_action": [v.org_key.pk],
                    "post": "yes",
                }
            response = client.post(url, data) if method == "post" else client.get(url)
            if caller.startswith("staff") and response.status_code == 302 and operation == "list":
                # The self-serve settings' list only redirects to its one row: follow it.
                response = client.get(response["Location"])
            got: Any = response.status_code
            if response.status_code == 302:
                got = (302, response["Location"].split("?")[0])
            want = expected(caller, operation, method)
            if operation == "revoke selected" and caller == "staff who may only view":
                # The action is not offered without the change permission: the list is
                # shown again (or redirects back), and nothing is revoked.
                want = lambda got, url=url: got in (200, (302, url))
            matrix.check(Cell("admin", model, operation, caller, want), got)

    assert [str(c) for c in matrix.wrong] == []
    assert len(matrix.cells) == len(callers) * len(urls)
    assert ApiKey.objects.get(pk=v.org_key.pk).status == ApiKey.Status.ACTIVE
    print(f"\nisolation, admin: {len(matrix.cells)} cells over {len(admin.site._registry)} models")


def test_the_same_requests_succeed_for_the_rightful_callers(victim: Victim) -> None:
    """Control: the cells above are refused for who is calling, not for what they send."""
    v = victim
    ada = Client()
    ada.force_login(v.ada)
    org, key = v.acme.code, v.org_key.pk
    assert ada.get(f"/portal/keys/{key}/").status_code == HTTPStatus.OK
    assert ada.get(f"/portal/orgs/{org}/keys/").status_code == HTTPStatus.OK
    created = ada.post(
        f"/portal/orgs/{org}/keys/new/",
        {"name": "Planted", "api": v.api.id, "form_token": grant_form_token(ada)},
    )
    assert created.status_code == HTTPStatus.OK and ApiKey.objects.filter(name="Planted").exists()
    rotated = ada.post(
        f"/portal/keys/{key}/rotate/", {"grace_seconds": "0", "form_token": grant_form_token(ada)}
    )
    assert rotated.status_code == HTTPStatus.OK
    superuser = Client()
    superuser.force_login(UserFactory(is_staff=True, is_superuser=True))
    for _, operation, method, url in admin_urls(v):
        if method == "get" and operation in ("list", "change page", "history page"):
            assert superuser.get(url, follow=True).status_code == HTTPStatus.OK, url
    _, _, token = token_for(sorted(MANAGEMENT_SCOPES), name="Platform")
    platform = APIClient()
    platform.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert platform.get(f"/api/v1/api_keys/{key}").status_code == HTTPStatus.OK
    # Ada rotated the key above: its old secret is refused, as the rotation promised.
    verified = platform.post("/api/v1/api_keys/verify", {"api_key": v.key_plaintext}, format="json")
    assert verified.json()["code"] == "API_KEY_INVALID"
