"""The browser harness itself: Chromium reaches the live server and renders a page."""

from __future__ import annotations

import pytest


@pytest.mark.django_db(transaction=True)
def test_admin_login_page_renders_in_chromium(page, screenshot):
    page.goto("/admin/login/")
    assert page.locator("input[name=username]").is_visible()
    assert screenshot("admin-login").stat().st_size > 0


@pytest.mark.django_db(transaction=True)
def test_the_front_page_leads_to_the_portal_sign_in(page, screenshot):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/")
    screenshot("front-page")
    page.get_by_role("link", name="Customer portal").click()
    assert page.locator("input[name=username]").is_visible()
    assert page.url.endswith("/portal/login/")
