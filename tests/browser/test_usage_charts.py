"""Usage charts in Chromium: the portal's key page and organization page and the admin's key
page, with 30 days of usage, at 1280×800 and at a phone's 390×844. The chart and its table
show, and nothing makes the page scroll sideways on the phone. Screenshots go to
artifacts/screenshots/usage-*.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from apikeys.models import ApiKey
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_admin import PASSWORD as ADMIN_PASSWORD
from tests.browser.test_admin import key_url
from tests.browser.test_portal import portal_link, sign_in_with_link
from tests.factories import ApiKeyUsageFactory, OrganizationFactory
from tests.portal.helpers import issue, member_of

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def thirty_days_of_use(api_key: ApiKey, *, scale: int = 1) -> None:
    """A working week's rhythm with a few refusals, over the last 30 UTC days."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for days_ago in range(30):
        day = today - timedelta(days=days_ago)
        weekday = day.weekday() < 5
        ApiKeyUsageFactory(
            api_key=api_key,
            start=day,
            verified=scale * ((900 if weekday else 250) + 37 * (days_ago % 7)),
            rate_limited=scale * (40 if days_ago % 9 == 0 else 3),
            revoked=scale * (12 if days_ago == 4 else 0),
            wrong_audience=scale * (days_ago % 4),
        )


def check_chart(page: Any, name: str) -> None:
    """At each size: the chart and its legend show, the table opens, nothing overflows."""
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        chart = page.get_by_test_id("usage-chart").first
        expect(chart).to_be_visible()
        expect(chart.get_by_role("img")).to_be_visible()
        expect(chart.locator(".usage__bar--valid").first).to_be_visible()
        box = chart.get_by_test_id("usage-svg").bounding_box()
        assert box["width"] > 200 and box["height"] > 100, box
        details = chart.get_by_test_id("usage-details")
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        expect(chart.get_by_test_id("usage-table")).to_be_visible()
        expect(chart.get_by_test_id("usage-table").locator("tbody tr")).to_have_count(30)
        page.screenshot(path=str(shot(f"usage-{name}-{size}")), full_page=True)
        if size == "phone":
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name}: the page is {width}px wide at 390px"


def shot(name: str) -> Any:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def test_the_portal_shows_a_keys_30_days_and_an_organizations_keys_side_by_side(
    page, live_server, api
):
    organization = OrganizationFactory(name="Acme Corp")
    reader = member_of(organization, "read", first_name="Grace", last_name="Hopper")
    backend = issue(api=api, name="Acme backend", organization=organization).api_key
    exports = issue(api=api, name="Nightly exports", organization=organization).api_key
    issue(api=api, name="Unused staging key", organization=organization)
    thirty_days_of_use(backend, scale=3)
    thirty_days_of_use(exports)
    sign_in_with_link(page, portal_link(live_server, reader, organization=organization))

    page.goto(f"/portal/keys/{backend.id}/")
    check_chart(page, "portal-key")

    page.goto(f"/portal/orgs/{organization.code}/keys/")
    expect(page.get_by_test_id("key-usage")).to_have_count(3)
    expect(page.locator(f'tr[data-key-id="{backend.id}"] .usage-row__bar')).to_be_visible()
    check_chart(page, "portal-org")
    page.set_viewport_size(SIZES["desktop"])
    # The key list keeps fitting its card at 1280px with the usage column added.
    widths = page.eval_on_selector(".card--flush", "el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1], f"the key list scrolls sideways at 1280px: {widths}"


def test_the_admin_key_page_shows_its_30_days(page, live_server, issued_key):
    get_user_model().objects.create_superuser("root", "root@example.com", ADMIN_PASSWORD)
    thirty_days_of_use(issued_key.api_key, scale=20)
    page.goto("/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit]")

    page.goto(key_url(issued_key.api_key))
    expect(page.get_by_role("heading", name="Usage, last 30 days")).to_be_visible()
    check_chart(page, "admin-key")
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size(SIZES["desktop"])
    page.screenshot(path=str(shot("usage-admin-key-dark")), full_page=True)
    page.get_by_test_id("usage-chart").screenshot(path=str(shot("usage-admin-chart-dark")))


def test_a_limit_set_in_the_portal_shows_its_refusal_in_the_chart_and_table(page, live_server, api):
    """A member with write access sets a rate limit of 1 a minute on the key's "Usage limits"
    page; of the next two verifications one is valid and one refused, and the key's page
    shows both in today's bar and in the table."""
    from apikeys import services

    organization = OrganizationFactory(name="Acme Corp")
    writer = member_of(organization, "write", first_name="Ada", last_name="Lovelace")
    issued = issue(api=api, name="Acme backend", organization=organization)
    sign_in_with_link(page, portal_link(live_server, writer, organization=organization))

    page.goto(f"/portal/keys/{issued.api_key.id}/")
    expect(page.get_by_text("No verifications in the last 30 days.")).to_be_visible()
    page.get_by_test_id("limits").click()
    page.get_by_label("Rate limit: verifications").fill("1")
    page.get_by_label("Rate limit: per seconds").fill("60")
    page.get_by_test_id("save-limits").click()
    expect(page.get_by_text("No verifications in the last 30 days.")).to_be_visible()

    answers = [services.api_key_verify(key=issued.plaintext).code for _ in range(2)]
    assert answers == ["API_KEY_VERIFIED", "API_KEY_RATE_LIMITED"]

    page.reload()
    chart = page.get_by_test_id("usage-chart")
    expect(chart.locator(".usage__bar--valid").last).to_be_visible()
    details = chart.get_by_test_id("usage-details")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    today = chart.get_by_test_id("usage-table").locator("tbody tr").last
    expect(today.locator("td")).to_have_text(["1", "1", "2"])
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.screenshot(path=str(shot(f"usage-limit-refusal-{size}")), full_page=True)
        if size == "phone":
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
