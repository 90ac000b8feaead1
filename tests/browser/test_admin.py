"""The admin in a real browser: a platform admin signs in, issues an organization-level and a
user-level key from their pages, reads each secret off the shown-once page, rotates and
revokes through the pages, and the service agrees at every step."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from apikeys import services
from apikeys.models import ApiKey
from apikeys.services import Verification

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture
def platform() -> SimpleNamespace:
    """A superuser, an organization, a user, and two APIs with scopes, made by the services
    (the superuser as ``manage.py createsuperuser`` would)."""
    system = services.Actor.system()
    admin = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    organization = services.organization_create(name="Acme Corp", code="org_acme", actor=system)
    person = services.user_create(
        email="ada@example.com", given_name="Ada", family_name="Lovelace", actor=system
    )
    orders = services.api_create(
        name="Orders API", audience="https://orders.example.com", actor=system
    )
    for key, description in [
        ("read:orders", "Read orders"),
        ("write:orders", "Create and change orders"),
    ]:
        services.scope_create(api=orders, key=key, description=description, actor=system)
    billing = services.api_create(
        name="Billing API", audience="https://billing.example.com", actor=system
    )
    services.scope_create(
        api=billing, key="read:invoices", description="Read invoices", actor=system
    )
    return SimpleNamespace(
        admin=admin, organization=organization, person=person, orders=orders, billing=billing
    )


def sign_in(page: Any) -> None:
    page.goto("/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("API keys administration")


def key_url(api_key: ApiKey) -> str:
    return f"/admin/apikeys/apikey/{quote(api_key.pk)}/change/"


def add_key_from_owner_page(
    page: Any, owner_url: str, *, name: str, api: Any, scopes: list[str], screenshot: Any = None
) -> str:
    """Open the owner's page, follow "Add API key", fill the form, save, and return the
    secret read off the shown-once page."""
    page.goto(owner_url)
    page.click("a.apikeys-add-key")
    expect(page.locator("h1")).to_have_text("Add API key")
    page.fill("#id_name", name)
    page.select_option("#id_api", value=api.id)
    # Only the chosen API's scopes are offered.
    for box in page.locator("#id_scopes input[type=checkbox]").all():
        expect(box).to_be_visible() if box.get_attribute("data-api") == api.id else expect(
            box
        ).to_be_hidden()
    for scope in scopes:
        page.locator(f"#id_scopes input[data-api='{api.id}']").locator(
            f"xpath=ancestor::label[contains(., '{scope}')]"
        ).click()
    if screenshot:
        screenshot("admin-key-add-form")
    page.click("input[name=_save]")
    expect(page.locator("h1")).to_have_text("Your new API key")
    expect(page.locator(".apikeys-warning")).to_contain_text("will not be shown again")
    return page.input_value("#secret-0")


def test_admin_issues_rotates_and_revokes_keys_in_the_browser(
    page, screenshot, platform, live_server
):
    page.set_viewport_size({"width": 1600, "height": 900})  # the key list's columns, unclipped
    sign_in(page)

    # An organization-level key, from the organization's page.
    org_url = f"/admin/apikeys/organization/{platform.organization.pk}/change/"
    org_secret = add_key_from_owner_page(
        page,
        org_url,
        name="Acme backend",
        api=platform.orders,
        scopes=["read:orders", "write:orders"],
        screenshot=screenshot,
    )
    screenshot("admin-key-shown-once")
    result = services.api_key_verify(key=org_secret, audience=platform.orders.audience)
    assert result.code == Verification.VERIFIED
    assert result.org_code == "org_acme" and result.scopes == ("read:orders", "write:orders")

    # The copy button puts the very secret on the clipboard.
    page.click("button.apikeys-copy")
    expect(page.locator("#secret-0-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == org_secret

    # A user-level key, from the user's page.
    user_url = f"/admin/apikeys/user/{platform.person.pk}/change/"
    user_secret = add_key_from_owner_page(
        page, user_url, name="Ada's script", api=platform.orders, scopes=["read:orders"]
    )
    result = services.api_key_verify(key=user_secret)
    assert result.is_valid and result.user_id == platform.person.public_id

    # The list shows both, and neither secret.
    page.goto("/admin/apikeys/apikey/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("Acme Corp")
    expect(page.locator("#result_list")).to_contain_text("ada@example.com")
    assert org_secret not in page.content() and user_secret not in page.content()
    screenshot("admin-key-list")

    # Rotate the organization key from its page: a new secret, the old one dead.
    org_key = ApiKey.objects.get(name="Acme backend")
    page.goto(key_url(org_key))
    screenshot("admin-key-detail")
    page.click("a.apikeys-rotate-link")
    page.get_by_label("Immediately: the current secret stops working now").check()
    page.click("input[name=rotate]")
    expect(page.locator("h1")).to_have_text("The new secret of the rotated key")
    rotated_secret = page.input_value("#secret-0")
    assert rotated_secret != org_secret
    assert services.api_key_verify(key=rotated_secret).key_id == org_key.id
    assert services.api_key_verify(key=org_secret).code == Verification.INVALID

    # Revoke it from its page, after the confirmation.
    page.click("a.apikeys-done")
    page.click("a.apikeys-revoke-link")
    expect(page.locator("#content")).to_contain_text("Are you sure")
    page.click("input[name=revoke]")
    expect(page.locator(".messagelist")).to_contain_text("was revoked")
    expect(page.locator(".field-status_badge")).to_contain_text("revoked")
    assert services.api_key_verify(key=rotated_secret).code == Verification.REVOKED

    # Revoke the user key with the list action.
    user_key = ApiKey.objects.get(name="Ada's script")
    page.goto("/admin/apikeys/apikey/")
    page.check(f"input.action-select[value='{user_key.pk}']")
    page.select_option("select[name=action]", "revoke_selected")
    page.click("button[name=index]")
    expect(page.locator("#content")).to_contain_text("Are you sure you want to revoke")
    page.click("input[value='Yes, revoke them']")
    expect(page.locator(".messagelist")).to_contain_text("Revoked 1 API key")
    assert services.api_key_verify(key=user_secret).code == Verification.REVOKED


def test_the_secret_is_only_in_the_response_to_the_post(page, platform, live_server):
    """The secret exists only in the response to the POST: the same address fetched again
    is the blank form, and the key's page, where the admin goes next, never has it."""
    sign_in(page)
    secret = add_key_from_owner_page(
        page,
        f"/admin/apikeys/organization/{platform.organization.pk}/change/",
        name="Once",
        api=platform.billing,
        scopes=["read:invoices"],
    )
    assert services.api_key_verify(key=secret).is_valid
    again = page.request.get(page.url)
    assert again.ok and 'name="name"' in again.text() and secret not in again.text()
    page.click("a.apikeys-done")
    assert re.search(r"/admin/apikeys/apikey/.+/change/$", page.url)
    assert secret not in page.content()


def test_a_superuser_signed_in_by_a_portal_link_is_asked_to_sign_in_to_the_admin(
    page, live_server, platform, screenshot
):
    """Issue 13, item 1: a portal link (which any M2M application holding
    create:portal_links can mint) signs into the portal only. The admin shows its own
    sign-in form, and only the password opens it."""
    from portal import services as portal_services

    url = portal_services.portal_link_create(
        user=platform.admin, base_url=live_server.url, actor=services.Actor.system()
    )
    page.goto(url)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/portal/"))
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/"))
    expect(page.locator("input[name=password]")).to_be_visible()
    screenshot("admin-refuses-portal-session")
    page.goto("/admin/oauth2_provider/application/add/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    # The admin's own sign-in opens it, in the same browser.
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("API keys administration")
    expect(page).to_have_url(re.compile(r"/admin/oauth2_provider/application/add/"))
