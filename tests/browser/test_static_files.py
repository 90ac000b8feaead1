"""Served the way the README deploys it (gunicorn, DEBUG off, after collectstatic), the admin
and the portal are styled: WhiteNoise serves their stylesheets itself, compressed and with
content-hashed names cached for a year (issue 14, item 1). Before, nothing served
STATIC_ROOT under gunicorn and every page rendered unstyled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.servers import Service, manage, production_env

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Service]:
    env = production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage(env, "migrate", "--noinput")
    service = Service(env=env, workers=1)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def computed(page: Any, selector: str, prop: str) -> str:
    return str(page.eval_on_selector(selector, f"el => getComputedStyle(el).{prop}"))


def test_portal_and_admin_stylesheets_load_under_gunicorn(browser, deployed) -> None:
    context = browser.new_context(base_url=f"http://127.0.0.1:{deployed.port}")
    page = context.new_page()
    try:
        page.goto("/portal/login/")
        # portal.css: the primary button's indigo, the card's rounded corners.
        assert computed(page, "button.button--primary", "backgroundColor") == "rgb(67, 56, 202)"
        assert computed(page, ".auth__card", "borderTopLeftRadius") != "0px"
        shoot(page, "gunicorn-portal-login")
        page.goto("/admin/login/")
        # Django admin's base.css: the header bar's colour.
        assert computed(page, "#header", "backgroundColor") != "rgba(0, 0, 0, 0)"
        assert computed(page, "#header", "display") == "flex"
        shoot(page, "gunicorn-admin-login")
        stylesheet = page.eval_on_selector("link[rel=stylesheet]", "el => el.href")
    finally:
        context.close()
    # A content-hashed name, compressed, cached for a year.
    path = "/" + stylesheet.split("/", 3)[3]
    assert re.search(r"\.[0-9a-f]{12}\.css$", path), path
    answer = deployed.request("GET", path, headers={"Accept-Encoding": "gzip"})
    assert answer.status == 200
    assert answer.headers.get("content-encoding") == "gzip"
    assert "max-age=315360000" in answer.headers["cache-control"]
