"""The self-serve portal in Chromium: portal links, the whole key life cycle as a customer
sees it, what a read-only member sees, and another organization's keys typed into the
address bar. Screenshots of every page go to artifacts/screenshots/portal-*.png."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from apikeys import services
from apikeys.models import ApiKey
from portal import services as portal_services
from portal.models import SelfServeSettings
from tests.factories import OrganizationFactory, ScopeFactory, UserFactory
from tests.portal.helpers import PASSWORD, issue, member_of

pytestmark = pytest.mark.django_db(transaction=True)


def portal_link(live_server: Any, user: Any, **options: Any) -> str:
    return portal_services.portal_link_create(
        user=user, base_url=live_server.url, actor=services.Actor.system(), **options
    )


def sign_in_with_link(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Continue").click()


def create_key(page: Any, *, name: str, api: Any, scope_keys: list[str]) -> str:
    """Fill the create form, submit it and return the secret read off the page."""
    page.get_by_test_id("create-key").first.click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("API", exact=True).select_option(api.pk)
    for key in scope_keys:
        page.get_by_role("checkbox", name=re.compile(re.escape(key))).check()
    page.get_by_role("button", name="Create API key").click()
    expect(page.get_by_test_id("secret")).to_be_visible()
    return page.get_by_test_id("secret").input_value()


def rotate_key(page: Any) -> str:
    page.get_by_test_id("rotate").click()
    page.get_by_label("Immediately").check()
    page.get_by_test_id("confirm-rotate").click()
    expect(page.get_by_test_id("secret")).to_be_visible()
    return page.get_by_test_id("secret").input_value()


def revoke_key(page: Any) -> None:
    page.get_by_test_id("revoke").click()
    page.get_by_test_id("confirm-revoke").click()
    expect(page.locator(".badge--revoked").first).to_be_visible()


def test_a_user_with_a_portal_link_creates_rotates_and_revokes_their_own_key(
    page, live_server, screenshot, settings, api, read_users, write_users
):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_RETURN_URL_HOSTS": ["app.example.com"]}
    ScopeFactory(key="read:invoices", api__name="Billing API")  # another API's scope
    user = UserFactory(
        first_name="Ada", last_name="Lovelace", email="ada@example.com", username="ada@example.com"
    )
    url = portal_link(
        live_server, user, sub_nav="api_keys", return_url="https://app.example.com/settings"
    )

    page.goto(url)
    expect(page.get_by_test_id("link-user")).to_have_text("Ada Lovelace")
    screenshot("portal-link-confirm")
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(r"/portal/keys/$"))
    expect(page.get_by_test_id("no-keys")).to_be_visible()
    expect(page.get_by_test_id("back-to-app")).to_have_attribute(
        "href", "https://app.example.com/settings"
    )
    screenshot("portal-user-keys-empty")

    page.get_by_test_id("create-key").first.click()
    page.get_by_label("Name").fill("Reporting script")
    page.get_by_label("API", exact=True).select_option(api.pk)
    # The scope choices follow the chosen API: the other API's scope is hidden.
    expect(page.get_by_role("checkbox", name=re.compile("read:invoices"))).to_be_hidden()
    page.get_by_role("checkbox", name=re.compile("read:users")).check()
    screenshot("portal-key-create")
    page.get_by_role("button", name="Create API key").click()

    secret = page.get_by_test_id("secret").input_value()
    page.get_by_test_id("copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot("portal-key-secret")
    first = services.api_key_verify(key=secret)
    assert first.is_valid and first.scopes == ("read:users",) and first.user_id == user.public_id

    page.get_by_test_id("done").click()
    expect(page.get_by_test_id("verification-count")).to_have_text("1")
    screenshot("portal-key-detail")

    page.get_by_test_id("rotate").click()
    screenshot("portal-key-rotate")
    page.get_by_label("Immediately").check()
    page.get_by_test_id("confirm-rotate").click()
    new_secret = page.get_by_test_id("secret").input_value()
    screenshot("portal-key-rotated-secret")
    assert new_secret != secret
    assert services.api_key_verify(key=secret).code == "API_KEY_INVALID"
    assert services.api_key_verify(key=new_secret).is_valid

    page.get_by_test_id("done").click()
    page.get_by_test_id("revoke").click()
    screenshot("portal-key-revoke")
    page.get_by_test_id("confirm-revoke").click()
    expect(page.locator(".alert--success")).to_contain_text("is revoked")
    screenshot("portal-key-revoked")
    assert services.api_key_verify(key=new_secret).code == "API_KEY_REVOKED"

    issue(api=api, name="Staging deploys", scopes=("read:users", "write:users"), user=user)
    page.get_by_role("navigation", name="Key pages").get_by_role(
        "link", name="Your API keys"
    ).click()
    expect(page.locator("tr[data-key-id]")).to_have_count(2)
    screenshot("portal-user-keys")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("portal-user-keys-mobile")


def test_a_used_link_lands_on_the_sign_in_page_with_a_clear_message(page, live_server, screenshot):
    user = UserFactory()
    url = portal_link(live_server, user)
    sign_in_with_link(page, url)
    expect(page).to_have_url(re.compile(r"/portal/keys/$"))
    page.context.clear_cookies()

    page.goto(url)
    expect(page).to_have_url(re.compile(r"/portal/login/$"))
    expect(page.get_by_test_id("login-message")).to_contain_text("already been used")
    screenshot("portal-link-used")


def test_an_organization_member_with_read_only_sees_the_keys_but_cannot_change_them(
    page, live_server, screenshot, api, read_users
):
    organization = OrganizationFactory(name="Acme Corp")
    member_of(
        organization,
        "read",
        email="grace@example.com",
        username="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
        password=PASSWORD,
    )
    key = issue(
        api=api, name="Acme backend", scopes=("read:users",), organization=organization
    ).api_key

    page.goto("/portal/login/")
    screenshot("portal-login")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Key pages").get_by_role("link", name="Acme Corp").click()

    expect(page.locator(f'tr[data-key-id="{key.id}"]')).to_be_visible()
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_test_id("create-key")).to_have_count(0)
    screenshot("portal-org-keys-read-only")

    page.get_by_role("link", name="Acme backend").click()
    expect(page.get_by_test_id("rotate")).to_have_count(0)
    expect(page.get_by_test_id("revoke")).to_have_count(0)
    screenshot("portal-org-key-detail-read-only")

    for path in (
        f"/portal/orgs/{organization.code}/keys/new/",
        f"/portal/keys/{key.id}/rotate/",
        f"/portal/keys/{key.id}/revoke/",
    ):
        response = page.goto(path)
        assert response.status == 403, path
    screenshot("portal-forbidden")
    assert ApiKey.objects.filter(organization=organization).count() == 1
    assert ApiKey.objects.get(pk=key.pk).status == "active"


def test_an_organization_member_with_write_creates_rotates_and_revokes_its_keys(
    page, live_server, screenshot, api, read_users, write_users
):
    organization = OrganizationFactory(name="Acme Corp")
    admin = member_of(organization, "write", first_name="Ada", last_name="Lovelace")
    issue(
        api=api,
        name="Acme backend",
        scopes=("read:users", "write:users"),
        organization=organization,
    )
    sign_in_with_link(
        page,
        portal_link(live_server, admin, organization=organization, sub_nav="organization_api_keys"),
    )

    expect(page).to_have_url(re.compile(rf"/portal/orgs/{organization.code}/keys/$"))
    screenshot("portal-org-keys")
    secret = create_key(page, name="Nightly export", api=api, scope_keys=["read:users"])
    verified = services.api_key_verify(key=secret)
    assert verified.is_valid and verified.org_code == organization.code

    page.get_by_test_id("done").click()
    new_secret = rotate_key(page)
    assert services.api_key_verify(key=secret).code == "API_KEY_INVALID"
    assert services.api_key_verify(key=new_secret).is_valid

    page.get_by_test_id("done").click()
    revoke_key(page)
    assert services.api_key_verify(key=new_secret).code == "API_KEY_REVOKED"
    screenshot("portal-org-key-revoked")


def test_a_member_of_another_organization_gets_404_for_the_first_organizations_keys(
    page, live_server, screenshot, api
):
    first = OrganizationFactory(name="Acme Corp")
    key = issue(api=api, name="Acme backend", organization=first).api_key
    before = ApiKey.objects.get(pk=key.pk).digest
    other = OrganizationFactory(name="Globex")
    outsider = member_of(other, "write")
    sign_in_with_link(page, portal_link(live_server, outsider, organization=other))

    for path in (
        f"/portal/keys/{key.id}/",
        f"/portal/keys/{key.id}/rotate/",
        f"/portal/keys/{key.id}/revoke/",
        f"/portal/orgs/{first.code}/keys/",
        f"/portal/orgs/{first.code}/keys/new/",
    ):
        response = page.goto(path)
        assert response.status == 404, path
        expect(page.get_by_test_id("not-found")).to_be_visible()
    screenshot("portal-not-found")
    row = ApiKey.objects.get(pk=key.pk)
    assert (row.digest, row.status) == (before, "active")


def test_with_both_switches_off_the_portal_says_so(page, live_server, screenshot):
    user = UserFactory()
    url = portal_link(live_server, user)
    SelfServeSettings.load()
    SelfServeSettings.objects.update(user_keys_enabled=False, organization_keys_enabled=False)
    sign_in_with_link(page, url)
    page.goto("/portal/")
    expect(page.get_by_test_id("self-serve-off")).to_contain_text("turned off")
    screenshot("portal-disabled")
