"""The portal's permission matrix: user × role × action × own/other object.

The acting user is a member of Acme with a role granting nothing (``none``), ``read`` or
``write`` (read + write) on organization keys, and also a writer in Globex (power elsewhere
must not leak). Targets: Acme's key (own organization), Initech's key (another organization,
where the user is no member), the user's own personal key and another user's personal key.

Every refusal is checked twice: by its status code (404 for what the user may not see, 403
for what they may see but not change) and by the database, where nothing may have changed.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from apikeys.models import ApiKey, AuditEvent
from tests.factories import OrganizationFactory, UserFactory
from tests.portal.helpers import grant_form_token, issue, member_of

LEVELS = ["none", "read", "write"]
ACTIONS = ["list", "detail", "create", "rotate", "revoke"]
TARGETS = ["own_org", "other_org", "own_user", "other_user"]

OK, FOUND = HTTPStatus.OK, HTTPStatus.FOUND
NOT_FOUND, FORBIDDEN = HTTPStatus.NOT_FOUND, HTTPStatus.FORBIDDEN
# What a permitted action answers: pages 200, create/rotate the shown-once page (200),
# revoke a redirect back to the key.
ALLOWED = {"list": OK, "detail": OK, "create": OK, "rotate": OK, "revoke": FOUND}


def expected(level: str, action: str, target: str) -> HTTPStatus:
    if target == "own_user":
        return ALLOWED[action]
    if target in ("other_org", "other_user"):
        # Another organization's or user's keys do not exist for this user. (The user's
        # key list always shows their own keys: see the separate check below.)
        return NOT_FOUND
    if level == "none":
        return NOT_FOUND
    if level == "read" and action in ("create", "rotate", "revoke"):
        return FORBIDDEN
    return ALLOWED[action]


CASES = [
    pytest.param(level, action, target, id=f"{level}-{action}-{target}")
    for level in LEVELS
    for action in ACTIONS
    for target in TARGETS
    # No URL names another user's key list or creates a key for another user.
    if not (target == "other_user" and action in ("list", "create"))
]


def snapshot() -> tuple[Any, ...]:
    keys = tuple(
        ApiKey.objects.order_by("id").values_list(
            "id", "digest", "previous_digest", "status", "rotated_on", "revoked_on"
        )
    )
    return keys, AuditEvent.objects.count()


@pytest.fixture
def world(db, api, read_users):
    acme = OrganizationFactory(name="Acme")
    globex = OrganizationFactory(name="Globex")
    initech = OrganizationFactory(name="Initech")
    stranger = UserFactory()
    member_of(initech, "write", user=stranger)
    return {
        "api": api,
        "scope": read_users,
        "acme": acme,
        "globex": globex,
        "initech": initech,
        "keys": {
            "own_org": issue(api=api, name="Acme key", organization=acme).api_key,
            "other_org": issue(api=api, name="Initech key", organization=initech).api_key,
            "other_user": issue(api=api, name="Stranger key", user=stranger).api_key,
        },
    }


def request(client: Any, world: dict[str, Any], action: str, target: str) -> Any:
    key = world["keys"][target]
    if action == "list":
        organization = world["acme"] if target == "own_org" else world["initech"]
        path = (
            "/portal/keys/" if target == "own_user" else f"/portal/orgs/{organization.code}/keys/"
        )
        return client.get(path)
    if action == "detail":
        return client.get(f"/portal/keys/{key.id}/")
    if action == "create":
        path = {
            "own_org": f"/portal/orgs/{world['acme'].code}/keys/new/",
            "other_org": f"/portal/orgs/{world['initech'].code}/keys/new/",
            "own_user": "/portal/keys/new/",
        }[target]
        return client.post(
            path,
            {
                "name": "Matrix key",
                "api": world["api"].pk,
                "scopes": [world["scope"].pk],
                "form_token": grant_form_token(client),
            },
        )
    if action == "rotate":
        return client.post(
            f"/portal/keys/{key.id}/rotate/",
            {"grace_seconds": "0", "form_token": grant_form_token(client)},
        )
    return client.post(f"/portal/keys/{key.id}/revoke/")


@pytest.mark.parametrize("level, action, target", CASES)
def test_permission_matrix(client, world, level, action, target):
    user = member_of(world["acme"], level)
    member_of(world["globex"], "write", user=user)
    world["keys"]["own_user"] = issue(api=world["api"], name="Own key", user=user).api_key
    client.force_login(user)
    before = snapshot()

    response = request(client, world, action, target)

    want = expected(level, action, target)
    assert response.status_code == want
    if want in (NOT_FOUND, FORBIDDEN):
        assert snapshot() == before, "a refused request changed something"
        assert b"k_live_" not in response.content
    elif action == "create":
        created = ApiKey.objects.get(name="Matrix key")
        assert created.organization == (world["acme"] if target == "own_org" else None)
        assert created.user == (user if target == "own_user" else None)
    elif action == "rotate":
        assert (
            ApiKey.objects.get(pk=world["keys"][target].pk).digest != world["keys"][target].digest
        )
    elif action == "revoke":
        assert ApiKey.objects.get(pk=world["keys"][target].pk).status == "revoked"
    else:
        assert world["keys"][target].id.encode() in response.content


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("form", ["create", "rotate", "revoke"])
def test_the_forms_of_changes_follow_the_same_rules(client, world, level, form):
    user = member_of(world["acme"], level)
    client.force_login(user)
    key = world["keys"]["own_org"]
    path = (
        f"/portal/orgs/{world['acme'].code}/keys/new/"
        if form == "create"
        else f"/portal/keys/{key.id}/{form}/"
    )
    want = {"none": NOT_FOUND, "read": FORBIDDEN, "write": OK}[level]
    assert client.get(path).status_code == want


@pytest.mark.parametrize("level", LEVELS)
def test_buttons_for_changes_show_only_with_write(client, world, level):
    client.force_login(member_of(world["acme"], level))
    key = world["keys"]["own_org"]
    listing = client.get(f"/portal/orgs/{world['acme'].code}/keys/")
    detail = client.get(f"/portal/keys/{key.id}/")
    if level == "none":
        assert (listing.status_code, detail.status_code) == (NOT_FOUND, NOT_FOUND)
        return
    writes = level == "write"
    assert (b'data-testid="create-key"' in listing.content) is writes
    assert (b'data-testid="rotate"' in detail.content) is writes
    assert (b'data-testid="revoke"' in detail.content) is writes
    assert (b'data-testid="read-only"' in listing.content) is not writes


def test_a_users_key_list_never_shows_another_users_or_unreadable_organizations_keys(client, world):
    user = member_of(world["acme"], "none")
    client.force_login(user)
    page = client.get("/portal/keys/").content
    for target in ("own_org", "other_org", "other_user"):
        assert world["keys"][target].id.encode() not in page


def test_the_navigation_lists_only_organizations_whose_keys_the_user_may_read(client, world):
    user = member_of(world["acme"], "none")
    member_of(world["globex"], "read", user=user)
    client.force_login(user)
    organizations = client.get("/portal/keys/").context["nav_organizations"]
    assert [o.code for o in organizations] == [world["globex"].code]


def test_losing_the_role_takes_the_organization_pages_away_at_once(client, world):
    user = member_of(world["acme"], "write")
    client.force_login(user)
    path = f"/portal/orgs/{world['acme'].code}/keys/"
    assert client.get(path).status_code == OK
    user.memberships.get(organization=world["acme"]).roles.clear()
    assert client.get(path).status_code == NOT_FOUND
