"""The browser harness itself: Chromium reaches the live server and renders a page."""

from __future__ import annotations

import pytest


@pytest.mark.django_db(transaction=True)
def test_admin_login_page_renders_in_chromium(page, screenshot):
    page.goto("/admin/login/")
    assert page.locator("input[name=username]").is_visible()
    assert screenshot("admin-login").stat().st_size > 0
