"""The API key list: its columns, filters and search, and a query count that does not grow
with the number of keys."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys import crypto, services
from apikeys.models import Api, ApiKey, Organization, Scope
from tests.factories import ApiFactory, OrganizationFactory, ScopeFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:apikeys_apikey_changelist")


def listed(client, **params: str) -> list[str]:
    """The ids of the keys a list page shows."""
    response = client.get(LIST_URL, params)
    assert response.status_code == HTTPStatus.OK
    return [k.id for k in response.context["cl"].result_list]


@pytest.fixture
def keys(api, read_users, organization, user, actor) -> dict[str, ApiKey]:
    """An active, a revoked and an expired organization key, a user key, and a key of
    another API."""
    other_api = ApiFactory(name="Billing API", audience="https://billing.example.com")

    def issue(name: str, **owner: Any) -> ApiKey:
        return services.api_key_issue(
            name=name,
            api=owner.pop("api", api),
            scopes=owner.pop("scopes", []),
            actor=actor,
            **owner,
        ).api_key

    made = {
        "active": issue("Active backend", organization=organization, scopes=[read_users]),
        "revoked": issue("Revoked backend", organization=organization),
        "expired": issue(
            "Expired backend",
            organization=organization,
            expires_at=timezone.now() + timedelta(hours=1),
        ),
        "user": issue("Personal script", user=user),
        "billing": issue("Billing job", organization=organization, api=other_api),
    }
    services.api_key_revoke(api_key=made["revoked"], actor=actor)
    ApiKey.objects.filter(pk=made["expired"].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return made


def test_the_list_shows_what_tells_keys_apart(admin_client, keys, organization, user):
    response = admin_client.get(LIST_URL)
    html = response.content.decode()
    active = keys["active"]
    assert "Active backend" in html and "Users API" in html and "Billing API" in html
    assert organization.name in html and organization.code in html
    assert user.email in html and user.public_id in html
    assert f"{active.key_prefix}…{active.key_suffix}" in html
    for status in ("active", "revoked", "expired"):
        assert f'apikeys-status-{status}">{status}<' in html
    assert active.digest not in html


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "active"}, {"active", "user", "billing"}),
        ({"status": "revoked"}, {"revoked"}),
        ({"status": "expired"}, {"expired"}),
        ({"owner_type": "user"}, {"user"}),
        ({"owner_type": "organization"}, {"active", "revoked", "expired", "billing"}),
    ],
)
def test_filters_by_status_and_owner_type(admin_client, keys, params, expected):
    assert set(listed(admin_client, **params)) == {keys[name].id for name in expected}


def test_filters_by_api_and_by_owner(admin_client, keys, api, organization, user):
    billing_api = keys["billing"].api
    assert listed(admin_client, api__id__exact=billing_api.pk) == [keys["billing"].id]
    assert keys["billing"].id not in listed(admin_client, api__id__exact=api.pk)
    assert listed(admin_client, owner=user.public_id) == [keys["user"].id]
    assert len(listed(admin_client, owner=organization.code)) == 4


@pytest.mark.parametrize(
    "term",
    [
        lambda k: k["active"].name.split()[0].lower(),  # part of the name, any case
        lambda k: k["active"].id,
        lambda k: k["active"].key_prefix,
    ],
    ids=["name", "id", "prefix"],
)
def test_search_finds_a_key_by_name_id_or_prefix(admin_client, keys, term):
    assert keys["active"].id in listed(admin_client, q=term(keys))
    assert keys["user"].id not in listed(admin_client, q=term(keys))


def test_search_finds_keys_by_owner_code(admin_client, keys, organization, user):
    assert listed(admin_client, q=user.public_id) == [keys["user"].id]
    assert set(listed(admin_client, q=organization.code)) == {
        keys[n].id for n in ("active", "revoked", "expired", "billing")
    }


# --------------------------------------------------------------------------- large lists


def add_keys(
    count: int,
    *,
    api: Api,
    scopes: list[Scope],
    organizations: list[Organization],
    users: list[Any],
) -> None:
    """``count`` keys, written as ``api_key_issue`` writes them (digest, display prefix and
    suffix, copied API and owner codes, scopes), in bulk: issuing a thousand keys one by one
    would test nothing more and take much longer. Owners alternate between organizations
    and users, so that both owner columns are drawn."""
    secret = "test-only-hashing-secret-not-for-production"
    rows = []
    for i in range(count):
        plaintext = crypto.generate_key()
        organization = organizations[i % len(organizations)] if i % 2 == 0 else None
        user = users[i % len(users)] if i % 2 else None
        rows.append(
            ApiKey(
                name=f"Bulk key {i}",
                api=api,
                api_public_id=api.id,
                audience=api.audience,
                scope_keys=" ".join(s.key for s in scopes),
                organization=organization,
                user=user,
                org_code=organization.code if organization else "",
                user_public_id=user.public_id if user else "",
                digest=crypto.digest(plaintext, secret),
                key_prefix=crypto.display_prefix(plaintext),
                key_suffix=crypto.display_suffix(plaintext),
                created_by="bulk",
                last_verified_on=timezone.now() if i % 3 == 0 else None,
                verification_count=i,
            )
        )
    ApiKey.objects.bulk_create(rows, batch_size=500)
    through = ApiKey.scopes.through
    through.objects.bulk_create(
        [through(apikey_id=row.id, scope_id=scope.id) for row in rows for scope in scopes],
        batch_size=500,
    )


def list_queries(client, **params: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST_URL, params)
    assert response.status_code == HTTPStatus.OK
    assert len(response.context["cl"].result_list) > 0
    return len(queries)


def test_the_key_list_makes_as_many_queries_for_1000_keys_as_for_10(admin_client, record_property):
    api = ApiFactory()
    scopes = [ScopeFactory(api=api), ScopeFactory(api=api)]
    organizations = OrganizationFactory.create_batch(20)
    users = UserFactory.create_batch(20)
    admin_client.get(LIST_URL)  # warm up: session, content types

    add_keys(10, api=api, scopes=scopes, organizations=organizations, users=users)
    with_10 = list_queries(admin_client)
    filtered_10 = list_queries(admin_client, status="active", owner_type="user", q="Bulk")

    add_keys(990, api=api, scopes=scopes, organizations=organizations, users=users)
    assert ApiKey.objects.count() == 1000
    with_1000 = list_queries(admin_client)
    filtered_1000 = list_queries(admin_client, status="active", owner_type="user", q="Bulk")

    record_property("queries_with_10_keys", with_10)
    record_property("queries_with_1000_keys", with_1000)
    print(f"\nkey list queries: {with_10} with 10 keys, {with_1000} with 1,000 keys")
    assert with_10 == with_1000
    assert filtered_10 == filtered_1000
    assert with_1000 <= 8  # session, user, count, page, filter choices: nothing per row
