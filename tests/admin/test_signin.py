"""Signing in to the admin: only its own password sign-in opens it, and that sign-in is
throttled in the same counts as the portal's (issue 13, items 1 and 3).

The hole these pin: an M2M application holding only ``create:portal_links`` asked for a
link for a superuser, pressed Continue, and the portal's session opened ``/admin/``, where it
could create an application with every scope.
"""

from __future__ import annotations

import random
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.test import Client
from oauth2_provider.models import get_application_model

from apikeys import checks, signin
from apikeys.models import MANAGEMENT_SCOPES
from tests.factories import UserFactory
from tests.limiter import break_limiter

PASSWORD = "correct-horse-battery-staple-42"
ADMIN_LOGIN = "/admin/login/"
PORTAL_LOGIN = "/portal/login/"
# Pages a portal session must not reach, read and write.
ADMIN_PAGES = ["/admin/", "/admin/apikeys/apikey/", "/admin/oauth2_provider/application/add/"]


def fresh_ip() -> str:
    """An address no other test uses: the counts live in a cache that outlives a test."""
    return f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
def superuser(db) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


def continue_link(client: Client, url: str) -> None:
    path = urlsplit(url).path
    assert client.get(path).status_code == HTTPStatus.OK
    response = client.post(path)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/portal/")


def assert_admin_refused(client: Client) -> None:
    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == HTTPStatus.FOUND, path
        assert urlsplit(response["Location"]).path == ADMIN_LOGIN, path
    applications = get_application_model().objects.count()
    response = client.post(
        "/admin/oauth2_provider/application/add/",
        {"name": "Takeover", "scopes": sorted(MANAGEMENT_SCOPES)},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert urlsplit(response["Location"]).path == ADMIN_LOGIN
    assert get_application_model().objects.count() == applications


@pytest.mark.django_db
def test_a_portal_link_minted_by_an_m2m_application_never_opens_the_admin(superuser, make_client):
    """The reported attack, end to end: a token with create:portal_links only, a link for a
    superuser, Continue, then /admin/ and an attempt to create an all-powerful application."""
    api = make_client(["create:portal_links"])
    response = api.post(
        "/api/v1/portal/generate_url", {"user_id": superuser.public_id}, format="json"
    )
    # Links for staff accounts are still issued (a staff member may be a customer too); the
    # session they start is the portal's only.
    assert response.status_code == HTTPStatus.OK
    browser = Client()
    continue_link(browser, response.json()["url"])
    assert browser.get("/portal/").status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert_admin_refused(browser)
    # The admin's sign-in page is shown (not a redirect back to the index, which a session
    # with admin rights would get).
    page = browser.get(ADMIN_LOGIN)
    assert page.status_code == HTTPStatus.OK
    assert "form" in page.context


@pytest.mark.django_db
def test_a_portal_password_sign_in_never_opens_the_admin(superuser):
    browser = Client()
    response = browser.post(
        PORTAL_LOGIN, {"username": superuser.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.FOUND
    assert browser.session["_auth_user_id"] == str(superuser.pk)
    assert_admin_refused(browser)


@pytest.mark.django_db
def test_the_admins_own_password_sign_in_lifts_the_portal_only_mark(superuser):
    browser = Client()
    browser.post(
        PORTAL_LOGIN, {"username": superuser.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    response = browser.post(
        ADMIN_LOGIN,
        {"username": superuser.username, "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR=fresh_ip(),
    )
    assert response.status_code == HTTPStatus.FOUND
    assert browser.get("/admin/").status_code == HTTPStatus.OK
    # Signing in through the portal again marks the session portal-only again.
    browser.post(
        PORTAL_LOGIN.replace("login/", "logout/"),
    )
    browser.post(
        PORTAL_LOGIN, {"username": superuser.username, "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert_admin_refused(browser)


@pytest.mark.django_db
def test_a_sign_in_announced_without_a_request_is_not_broken_by_the_portal_only_mark(superuser):
    """``user_logged_in`` may come from code with no request at hand (``request=None``): the
    receiver that lifts the portal-only mark has no session to clear, and must let it through
    rather than fail the sign-in."""
    answers = dict(user_logged_in.send(sender=type(superuser), request=None, user=superuser))
    assert answers[signin.clear_portal_only] is None


@pytest.mark.django_db
def test_admin_sign_in_is_throttled_even_for_the_right_password(superuser, settings):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_LOGIN_MAX_FAILURES": 3}
    browser = Client()
    ip = fresh_ip()
    for _ in range(3):
        response = browser.post(
            ADMIN_LOGIN, {"username": "root", "password": "guess"}, REMOTE_ADDR=ip
        )
        assert response.status_code == HTTPStatus.OK
    for password in ("guess", PASSWORD):
        response = browser.post(
            ADMIN_LOGIN, {"username": "root", "password": password}, REMOTE_ADDR=ip
        )
        assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
        assert int(response["Retry-After"]) > 0
        assert response.context["form"].errors.as_data()["__all__"][0].code == "throttled"
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_portal_failures_count_at_the_admin_door_too(superuser):
    """The reported case: after 5 failed portal sign-ins, the account's right password still
    signed into the admin from the same address. Both doors count in the same keys."""
    ip = fresh_ip()
    browser = Client()
    for _ in range(5):  # PORTAL_LOGIN_MAX_FAILURES' default
        browser.post(PORTAL_LOGIN, {"username": "root", "password": "guess"}, REMOTE_ADDR=ip)
    response = browser.post(ADMIN_LOGIN, {"username": "root", "password": PASSWORD}, REMOTE_ADDR=ip)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "_auth_user_id" not in browser.session


@pytest.mark.django_db
def test_admin_sign_in_fails_closed_when_the_counts_are_out_of_reach(superuser, monkeypatch):
    break_limiter(monkeypatch)
    response = Client().post(
        ADMIN_LOGIN, {"username": "root", "password": PASSWORD}, REMOTE_ADDR=fresh_ip()
    )
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response["Retry-After"] == "30"


@pytest.mark.django_db
def test_a_staff_member_signed_in_through_the_admin_reaches_the_admin():
    staff = UserFactory(is_staff=True, password=PASSWORD)
    browser = Client()
    response = browser.post(
        ADMIN_LOGIN,
        {"username": staff.username, "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR=fresh_ip(),
    )
    assert response.status_code == HTTPStatus.FOUND
    assert browser.get("/admin/").status_code == HTTPStatus.OK


def test_the_system_check_refuses_an_admin_site_that_accepts_portal_sessions(monkeypatch):
    import django.contrib.admin as django_admin

    assert checks.check_admin_site_refuses_portal_sessions() == []
    monkeypatch.setattr(django_admin, "site", AdminSite())
    assert [e.id for e in checks.check_admin_site_refuses_portal_sessions()] == ["apikeys.E201"]
