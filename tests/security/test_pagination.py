"""Hypothesis on cursor pagination, for every list of the Management API.

The contract: newest first, ``page_size`` from 1 to 100, ``starting_after`` the last id of
the previous page, and "a walk with ``starting_after`` sees every item exactly once even
while items are added". Here hypothesis picks how many items exist, the page sizes of the
walk and after which pages new items appear; whatever it picks, the walk must see exactly
the items that existed when it began, in the list's order, each once, and end with
``has_more`` false. Any text as a cursor is a 200 or a coded 400, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from apikeys import services
from apikeys.models import Api, ApiKey, Membership, Organization, Role, Scope, SystemPermission
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SYSTEM = services.Actor.system()
WALK_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Listing:
    """One list of the API: where it is, under which name, how its items are identified,
    how to make one more item, and what exists now in the list's order."""

    path: Callable[[Any], str]
    name: str
    item_id: Callable[[dict[str, Any]], str]
    add: Callable[[Any], None]
    existing: Callable[[Any], list[str]]


@dataclass
class Context:
    """The parent objects of the nested lists, fresh for each example."""

    api: Api
    organization: Organization


def _new_key(ctx: Context) -> None:
    services.api_key_issue(name="Listed", api=ctx.api, organization=ctx.organization, actor=SYSTEM)


def _new_member(ctx: Context) -> None:
    services.membership_add(organization=ctx.organization, user=UserFactory(), actor=SYSTEM)


_COUNTER = iter(range(10**9))


LISTINGS = {
    "api_keys": Listing(
        path=lambda ctx: f"/api/v1/api_keys?org_code={ctx.organization.code}",
        name="api_keys",
        item_id=lambda item: item["id"],
        add=_new_key,
        existing=lambda ctx: list(
            ApiKey.objects.filter(organization=ctx.organization)
            .order_by("-id")
            .values_list("id", flat=True)
        ),
    ),
    "apis": Listing(
        path=lambda ctx: "/api/v1/apis?",
        name="apis",
        item_id=lambda item: item["id"],
        add=lambda ctx: services.api_create(
            name="Listed", audience=f"https://l{next(_COUNTER)}.example", actor=SYSTEM
        ),
        existing=lambda ctx: list(Api.objects.order_by("-id").values_list("id", flat=True)),
    ),
    "scopes": Listing(
        path=lambda ctx: f"/api/v1/apis/{ctx.api.id}/scopes?",
        name="scopes",
        item_id=lambda item: item["id"],
        add=lambda ctx: services.scope_create(api=ctx.api, key=f"s:{next(_COUNTER)}", actor=SYSTEM),
        existing=lambda ctx: list(
            Scope.objects.filter(api=ctx.api).order_by("-id").values_list("id", flat=True)
        ),
    ),
    "organizations": Listing(
        path=lambda ctx: "/api/v1/organizations?",
        name="organizations",
        item_id=lambda item: item["code"],
        add=lambda ctx: services.organization_create(name="Listed", actor=SYSTEM),
        existing=lambda ctx: list(
            Organization.objects.order_by("-pk").values_list("code", flat=True)
        ),
    ),
    "users": Listing(
        path=lambda ctx: "/api/v1/users?",
        name="users",
        item_id=lambda item: item["id"],
        add=lambda ctx: UserFactory(),
        existing=lambda ctx: list(
            UserFactory._meta.model.objects.order_by("-public_id").values_list(
                "public_id", flat=True
            )
        ),
    ),
    "organization users": Listing(
        path=lambda ctx: f"/api/v1/organizations/{ctx.organization.code}/users?",
        name="users",
        item_id=lambda item: item["id"],
        add=_new_member,
        existing=lambda ctx: list(
            Membership.objects.filter(organization=ctx.organization)
            .order_by("-user__public_id")
            .values_list("user__public_id", flat=True)
        ),
    ),
    "roles": Listing(
        path=lambda ctx: "/api/v1/roles?",
        name="roles",
        item_id=lambda item: item["id"],
        add=lambda ctx: services.role_create(
            key=f"role-{next(_COUNTER)}", name="Listed", actor=SYSTEM
        ),
        existing=lambda ctx: list(Role.objects.order_by("-id").values_list("id", flat=True)),
    ),
    "system permissions": Listing(
        path=lambda ctx: "/api/v1/system_permissions?",
        name="system_permissions",
        item_id=lambda item: item["key"],
        add=lambda ctx: None,  # fixed by the product: nothing is ever added
        existing=lambda ctx: list(
            SystemPermission.objects.order_by("-pk").values_list("key", flat=True)
        ),
    ),
}


@pytest.fixture
def reader(m2m_client: Callable[..., APIClient]) -> APIClient:
    return m2m_client()


def walk(
    client: APIClient, listing: Listing, ctx: Context, sizes: list[int], adds: dict[int, int]
) -> list[str]:
    """Follow ``starting_after`` to the end; after page ``n``, ``adds[n]`` items appear."""
    seen: list[str] = []
    after: str | None = None
    page = 0
    while True:
        size = sizes[page % len(sizes)]
        url = f"{listing.path(ctx)}&page_size={size}" + (
            f"&starting_after={after}" if after else ""
        )
        response = client.get(url)
        assert response.status_code == HTTPStatus.OK, response.content
        body = response.json()
        items = [listing.item_id(item) for item in body[listing.name]]
        assert len(items) <= size
        seen += items
        page += 1
        for _ in range(adds.get(page, 0)):
            listing.add(ctx)
        if not body["has_more"]:
            assert len(items) <= size
            return seen
        assert len(items) == size, "a page with more after it is full"
        after = items[-1]
        assert page <= 200, "the walk must end"


@pytest.mark.parametrize("which", sorted(LISTINGS))
def test_a_cursor_walk_sees_every_item_once_in_order_while_items_are_added(
    reader: APIClient, which: str
) -> None:
    listing = LISTINGS[which]

    @WALK_SETTINGS
    @given(
        initial=st.integers(0, 12),
        sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
        adds=st.dictionaries(st.integers(1, 5), st.integers(1, 3), max_size=3),
    )
    def run(initial: int, sizes: list[int], adds: dict[int, int]) -> None:
        ctx = Context(
            api=services.api_create(
                name="Paged", audience=f"https://p{next(_COUNTER)}.example", actor=SYSTEM
            ),
            organization=services.organization_create(name="Paged", actor=SYSTEM),
        )
        for _ in range(initial):
            listing.add(ctx)
        expected = listing.existing(ctx)
        seen = walk(reader, listing, ctx, sizes, adds)
        assert seen == expected

    run()


@pytest.mark.parametrize("which", sorted(LISTINGS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cursor=st.text(max_size=80), page_size=st.none() | st.text(max_size=6))
def test_any_cursor_or_page_size_is_answered_never_crashed_on(
    reader: APIClient, world: Any, which: str, cursor: str, page_size: str | None
) -> None:
    listing = LISTINGS[which]
    ctx = Context(api=world.api, organization=world.organization)
    query: dict[str, str] = {"starting_after": cursor}
    if page_size is not None:
        query["page_size"] = page_size
    base = listing.path(ctx)
    response = reader.get(base.split("?")[0], {**dict(_query_pairs(base)), **query})
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.BAD_REQUEST), response.content
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == HTTPStatus.BAD_REQUEST:
        codes = {e["code"] for e in response.json()["errors"]}
        assert codes <= {
            "INVALID_CURSOR",
            "INVALID_PAGE_SIZE",
            "PAGE_SIZE_LIMIT_EXCEEDED",
            "INVALID_QUERY",
        }


def _query_pairs(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url).query)


@pytest.mark.parametrize("size", ["¹", "²", "٣", "１", "1.0", "-1", " 1", "0x1", "1e1", "+1"])
def test_page_sizes_that_only_look_like_numbers_are_400_not_500(
    reader: APIClient, size: str
) -> None:
    """Found by the cursor fuzzing: ``"¹".isdigit()`` is true but ``int("¹")`` fails."""
    response = reader.get("/api/v1/organizations", {"page_size": size})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert [e["code"] for e in response.json()["errors"]] == ["INVALID_PAGE_SIZE"]
