"""Usage charts in the portal: a key's page shows its last 30 days (chart and table), a key
list shows each key's total and their sum, at one query for the page however many keys,
and nobody sees the usage of a key they may not see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apikeys.models import ApiKey
from tests.factories import ApiKeyUsageFactory, OrganizationFactory, UserFactory
from tests.portal.helpers import issue, member_of

pytestmark = pytest.mark.django_db


def used(api_key: ApiKey, *, days_ago: int = 0, **counts: int) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ApiKeyUsageFactory(api_key=api_key, start=now - timedelta(days=days_ago), **counts)


def page(client: Any, path: str) -> str:
    response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def test_a_keys_page_shows_its_last_30_days_as_a_chart_and_a_table(client, user, api):
    client.force_login(user)
    key = issue(api=api, name="Mine", user=user).api_key
    used(key, verified=1234, rate_limited=5, revoked=2)
    used(key, days_ago=3, verified=10, expired=1)
    used(key, days_ago=30, verified=999)  # before the window

    html = page(client, f"/portal/keys/{key.id}/")
    assert 'data-testid="usage-chart"' in html and 'role="img"' in html
    assert 'data-testid="usage-valid">1,244<' in html
    assert 'data-testid="usage-refused">8<' in html
    table = html.split('data-testid="usage-table"')[1]
    assert table.count('<tr><th scope="row"><time') == 30
    assert '<td class="usage__num">1,234</td><td class="usage__num">7</td>' in table
    assert "apikeys/usage.css" in html


def test_an_unused_keys_page_says_it_has_no_usage(client, user, api):
    client.force_login(user)
    key = issue(api=api, user=user).api_key
    html = page(client, f"/portal/keys/{key.id}/")
    assert 'data-testid="usage-empty"' in html and "usage__svg" not in html


def test_an_organizations_page_shows_each_keys_total_side_by_side_and_their_sum(client, api):
    organization = OrganizationFactory()
    reader = member_of(organization, "read")
    client.force_login(reader)
    busy = issue(api=api, name="Busy", organization=organization).api_key
    quiet = issue(api=api, name="Quiet", organization=organization).api_key
    idle = issue(api=api, name="Idle", organization=organization).api_key
    used(busy, verified=300, rate_limited=100)
    used(quiet, days_ago=2, verified=40, wrong_audience=10)

    html = page(client, f"/portal/orgs/{organization.code}/keys/")
    rows = {
        key.id: html.split(f'data-key-id="{key.id}"')[1].split("</tr>")[0]
        for key in (busy, quiet, idle)
    }
    # Bars relative to the largest total (busy: 400): quiet's 50 is an eighth of it.
    assert (
        'usage__bar--valid" width="75"' in rows[busy.id]
        and "300 valid</span> <span>100 refused" in rows[busy.id]
    )
    assert (
        'usage__bar--valid" width="10"' in rows[quiet.id]
        and "40 valid</span> <span>10 refused" in rows[quiet.id]
    )
    assert "No verifications" in rows[idle.id]
    summary = html.split('data-testid="usage-summary"')[1].split("</section>")[0]
    assert "All keys, last 30 days" in summary
    assert 'data-testid="usage-valid">340<' in summary
    assert 'data-testid="usage-refused">110<' in summary


def org_page_queries(client: Any, path: str) -> int:
    client.get(path)  # warm: the session row and the settings row exist from here on
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == HTTPStatus.OK
    return len(queries)


def test_the_organization_page_costs_the_same_queries_for_1_and_50_keys_with_usage(client, api):
    organization = OrganizationFactory()
    client.force_login(member_of(organization, "read"))
    path = f"/portal/orgs/{organization.code}/keys/"

    def add_key(n: int) -> None:
        key = issue(api=api, name=f"Key {n}", organization=organization).api_key
        used(key, verified=n + 1, rate_limited=1)
        used(key, days_ago=5, verified=1)

    add_key(0)
    with_1 = org_page_queries(client, path)
    for n in range(1, 50):
        add_key(n)
    with_50 = org_page_queries(client, path)
    html = page(client, path)
    assert with_1 == with_50
    assert html.count('data-testid="key-usage"') == 50
    assert 'data-testid="usage-valid">1,325<' in html  # (1 + … + 50) + 50


def test_an_outsider_sees_no_usage_of_another_tenants_keys(client, api, user):
    acme = OrganizationFactory(name="Acme")
    org_key = issue(api=api, name="Acme backend", organization=acme).api_key
    someone_else = UserFactory()
    user_key = issue(api=api, name="Theirs", user=someone_else).api_key
    for key in (org_key, user_key):
        used(key, verified=424242, expired=1717)

    # A member of another organization, and a member of Acme whose role cannot read keys.
    globex = OrganizationFactory(name="Globex")
    for outsider in (member_of(globex, "write"), member_of(acme, "none")):
        client.force_login(outsider)
        for path in (
            f"/portal/keys/{org_key.id}/",
            f"/portal/keys/{user_key.id}/",
            f"/portal/orgs/{acme.code}/keys/",
        ):
            response = client.get(path)
            assert response.status_code == HTTPStatus.NOT_FOUND, path
            assert b"424,242" not in response.content and b"1,717" not in response.content
        # Their own list pages sum only their own keys.
        for path in ("/portal/keys/", f"/portal/orgs/{globex.code}/keys/"):
            response = client.get(path)
            if response.status_code == HTTPStatus.OK:
                assert b"424,242" not in response.content and b"1,717" not in response.content
