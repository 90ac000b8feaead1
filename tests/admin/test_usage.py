"""The admin's API key page ends with the key's last 30 days: the portal's chart and table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest

from tests.admin.helpers import admin_url
from tests.factories import ApiKeyUsageFactory

pytestmark = pytest.mark.django_db


def test_the_key_page_shows_the_last_30_days_as_a_chart_and_a_table(admin_client, issued_key):
    key = issued_key.api_key
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ApiKeyUsageFactory(api_key=key, start=hour, verified=70, usage_exceeded=3)
    ApiKeyUsageFactory(api_key=key, start=hour - timedelta(days=1), verified=30, revoked=1)

    response = admin_client.get(admin_url("apikey_change", key.pk))
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    chart = html.split('data-testid="usage-chart"')[1]
    assert 'role="img"' in chart and 'aria-labelledby="admin-usage-title admin-usage-desc"' in chart
    assert 'data-testid="usage-valid">100<' in chart and 'data-testid="usage-refused">4<' in chart
    assert '<td class="usage__num">70</td><td class="usage__num">3</td>' in chart
    assert chart.count('<tr><th scope="row"><time') == 30
    assert "apikeys/usage.css" in html


def test_a_view_only_staff_member_sees_the_chart_and_an_unused_key_says_so(
    staff_client, issued_key
):
    client = staff_client("view_apikey")
    response = client.get(admin_url("apikey_change", issued_key.api_key.pk))
    assert response.status_code == HTTPStatus.OK
    assert b'data-testid="usage-empty"' in response.content


def test_without_view_permission_there_is_no_key_page_and_no_usage(staff_client, issued_key):
    ApiKeyUsageFactory(
        api_key=issued_key.api_key,
        start=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
        verified=31337,
    )
    client = staff_client("view_organization")
    response = client.get(admin_url("apikey_change", issued_key.api_key.pk))
    assert response.status_code == HTTPStatus.FORBIDDEN, response.status_code
    assert b"31,337" not in response.content
