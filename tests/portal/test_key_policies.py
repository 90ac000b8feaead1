"""Key policies in the portal: the create page says the policy in words before anyone runs
into it, and the policy's refusals come back as form errors."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from apikeys import services
from apikeys.models import ApiKey
from tests.factories import OrganizationFactory
from tests.portal.helpers import grant_form_token, issue, member_of

pytestmark = pytest.mark.django_db

NO_LIMITS: dict[str, Any] = {
    "max_lifetime_days": None,
    "max_active_keys": None,
    "max_idle_days": None,
}


def set_org_policy(organization, **limits: Any) -> None:
    services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, **limits}, actor=services.Actor.system()
    )


def notes(response: Any) -> list[str]:
    return list(response.context["policy_notes"])


def test_the_organization_create_page_states_its_policy(client, api, acme, writer):
    set_org_policy(acme, max_lifetime_days=90, max_active_keys=10, max_idle_days=30)
    for _ in range(7):
        issue(api=api, organization=acme)
    client.force_login(writer)
    page = client.get(f"/portal/orgs/{acme.code}/keys/new/")
    assert page.status_code == HTTPStatus.OK
    assert notes(page) == [
        "Keys of Acme Corp expire after at most 90 days.",
        "Acme Corp may have at most 10 active keys (7 now).",
        "Keys of Acme Corp not verified for 30 days are revoked automatically.",
    ]
    html = page.content.decode()
    assert 'id="key-policy"' in html and "at most 10 active keys (7 now)" in html


def test_the_users_create_page_states_the_strictest_policy_of_their_organizations(
    client, api, acme
):
    globex = OrganizationFactory(name="Globex")
    set_org_policy(acme, max_active_keys=3)
    set_org_policy(globex, max_active_keys=1, max_lifetime_days=1)
    member = member_of(acme, "none")
    member_of(globex, "none", user=member)
    client.force_login(member)
    assert notes(client.get("/portal/keys/new/")) == [
        "Your keys expire after at most 1 day.",
        "You may have at most 1 active key (0 now).",
        "These are the strictest limits of your organizations' policies.",
    ]


def test_a_member_of_one_organization_sees_its_limits_without_the_strictest_note(client, acme):
    set_org_policy(acme, max_idle_days=60)
    client.force_login(member_of(acme, "none"))
    assert notes(client.get("/portal/keys/new/")) == [
        "Your keys not verified for 60 days are revoked automatically."
    ]


def test_without_limits_the_page_says_nothing(client, acme, writer):
    client.force_login(writer)
    page = client.get(f"/portal/orgs/{acme.code}/keys/new/")
    assert notes(page) == [] and 'id="key-policy"' not in page.content.decode()


def test_at_the_limit_the_page_says_so_and_the_refusal_is_a_form_error(client, api, acme, writer):
    set_org_policy(acme, max_active_keys=1)
    issue(api=api, organization=acme)
    client.force_login(writer)
    page = client.get(f"/portal/orgs/{acme.code}/keys/new/")
    assert "Acme Corp has reached that limit: revoke a key to create another." in notes(page)
    response = client.post(
        f"/portal/orgs/{acme.code}/keys/new/",
        {"name": "One too many", "api": api.pk, "form_token": grant_form_token(client)},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    [error] = response.context["form"].non_field_errors()
    assert "revoke one first" in error
    assert ApiKey.objects.filter(organization=acme).count() == 1


def test_a_key_made_in_the_portal_gets_the_policys_lifetime(client, api, acme, writer):
    set_org_policy(acme, max_lifetime_days=30)
    client.force_login(writer)
    response = client.post(
        f"/portal/orgs/{acme.code}/keys/new/",
        {"name": "Expiring", "api": api.pk, "form_token": grant_form_token(client)},
    )
    assert response.status_code == HTTPStatus.OK
    assert ApiKey.objects.get(name="Expiring").expires_at is not None


def test_a_users_own_key_limit_is_a_form_error(client, api, user):
    services.platform_key_policy_update(
        **{**NO_LIMITS, "max_active_keys": 1}, actor=services.Actor.system()
    )
    issue(api=api, user=user)
    client.force_login(user)
    assert notes(client.get("/portal/keys/new/"))[1] == (
        "You have reached that limit: revoke a key to create another."
    )
    response = client.post(
        "/portal/keys/new/",
        {"name": "Second", "api": api.pk, "form_token": grant_form_token(client)},
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["form"].non_field_errors()
    assert ApiKey.objects.filter(user=user).count() == 1
