"""Key policies in the admin: the platform default (one row), an organization's own policy
(inline on its page), and the policy's refusals on the issue form as form errors."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys import services
from apikeys.models import ApiKey, AuditEvent, OrganizationKeyPolicy, PlatformKeyPolicy
from tests.admin.helpers import admin_url, form_errors
from tests.admin.test_issue import ADD_URL, issue_data

pytestmark = pytest.mark.django_db

NO_LIMITS: dict[str, Any] = {
    "max_lifetime_days": None,
    "max_active_keys": None,
    "max_idle_days": None,
}
DEFAULT_URL = reverse("admin:apikeys_platformkeypolicy_change", args=[1])


def management(prefix: str, *, total: int, initial: int) -> dict[str, Any]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1",
    }


def policy_events() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action=AuditEvent.Action.KEY_POLICY_CHANGED).order_by("id")
    )


# --------------------------------------------------------------------------- platform default


def test_the_platform_default_list_goes_straight_to_its_one_row(admin_client):
    response = admin_client.get(reverse("admin:apikeys_platformkeypolicy_changelist"))
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, DEFAULT_URL)
    assert admin_client.get(DEFAULT_URL).status_code == HTTPStatus.OK


def test_the_platform_default_is_saved_through_the_service_and_audited(admin_client, admin_user):
    response = admin_client.post(
        DEFAULT_URL, {"max_lifetime_days": "90", "max_active_keys": "", "max_idle_days": "30"}
    )
    assert response.status_code == HTTPStatus.FOUND
    row = PlatformKeyPolicy.load()
    assert (row.max_lifetime_days, row.max_active_keys, row.max_idle_days) == (90, None, 30)
    [event] = policy_events()
    assert (event.actor_user, event.target_type) == (admin_user, "platform")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_lifetime_days", "0"),
        ("max_active_keys", "10001"),
        ("max_idle_days", "abc"),
        ("max_idle_days", "9" * 40),
        ("max_active_keys", "1\x00"),
    ],
)
def test_a_bad_platform_default_is_a_form_error(admin_client, field, value):
    response = admin_client.post(DEFAULT_URL, {**{k: "" for k in NO_LIMITS}, field: value})
    assert response.status_code == HTTPStatus.OK
    assert field in form_errors(response)
    assert PlatformKeyPolicy.load().max_lifetime_days is None and not policy_events()


def test_the_platform_default_cannot_be_added_or_deleted(admin_client):
    PlatformKeyPolicy.load()
    assert admin_client.get(reverse("admin:apikeys_platformkeypolicy_add")).status_code == 403
    delete = reverse("admin:apikeys_platformkeypolicy_delete", args=[1])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert PlatformKeyPolicy.objects.filter(pk=1).exists()


def test_a_staff_member_without_the_permission_cannot_change_the_default(staff_client):
    client = staff_client("view_apikey")
    assert client.post(DEFAULT_URL, {"max_active_keys": "1"}).status_code == 403
    assert PlatformKeyPolicy.load().max_active_keys is None


# --------------------------------------------------------------------------- organizations


def post_org(admin_client, organization, policy: dict[str, Any] | None, **extra: Any) -> Any:
    data = {"name": organization.name, **management("memberships", total=0, initial=0)}
    if policy is not None:
        initial = int(OrganizationKeyPolicy.objects.filter(organization=organization).exists())
        data.update(management("key_policy", total=1, initial=initial))
        data["key_policy-0-organization"] = organization.pk
        data.update({f"key_policy-0-{k}": "" if v is None else v for k, v in policy.items()})
    data.update(extra)
    return admin_client.post(admin_url("organization_change", organization.pk), data)


def test_an_organizations_policy_is_set_changed_and_removed_on_its_page(
    admin_client, admin_user, organization
):
    page = admin_client.get(admin_url("organization_change", organization.pk))
    assert 'name="key_policy-0-max_active_keys"' in page.content.decode()

    response = post_org(admin_client, organization, {**NO_LIMITS, "max_active_keys": 3})
    assert response.status_code == HTTPStatus.FOUND, response.context and response.context["errors"]
    assert services.key_policy_for_organization(organization).max_active_keys == 3

    post_org(admin_client, organization, {**NO_LIMITS, "max_active_keys": 4, "max_idle_days": 9})
    policy = services.key_policy_for_organization(organization)
    assert (policy.max_active_keys, policy.max_idle_days, policy.source) == (4, 9, "organization")

    removed = post_org(
        admin_client,
        organization,
        {**NO_LIMITS, "max_active_keys": 4, "max_idle_days": 9},
        **{"key_policy-0-DELETE": "on"},
    )
    assert removed.status_code == HTTPStatus.FOUND
    assert services.key_policy_for_organization(organization).source == "platform_default"
    events = policy_events()
    assert len(events) == 3 and all(e.actor_user == admin_user for e in events)
    assert all(e.org_code == organization.code for e in events)


@pytest.mark.parametrize("value", ["4000", "0", "9" * 40, "1\x00", "ten"])
def test_a_bad_organization_policy_is_a_form_error(admin_client, organization, value):
    response = post_org(admin_client, organization, {**NO_LIMITS, "max_lifetime_days": value})
    assert response.status_code == HTTPStatus.OK
    [formset] = [
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "key_policy"
    ]
    assert "max_lifetime_days" in formset.formset.errors[0]
    assert not OrganizationKeyPolicy.objects.exists()


def test_saving_the_page_without_the_policy_forms_leaves_the_policy(admin_client, organization):
    services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, "max_active_keys": 2}, actor=services.Actor()
    )
    response = post_org(admin_client, organization, None, name="Renamed")
    assert response.status_code == HTTPStatus.FOUND
    assert services.key_policy_for_organization(organization).max_active_keys == 2


# --------------------------------------------------------------------------- the issue form


def test_the_issue_form_shows_the_key_limit_as_a_form_error(admin_client, api, organization):
    services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, "max_active_keys": 1}, actor=services.Actor()
    )
    assert (
        admin_client.post(ADD_URL, issue_data(api=api, organization=organization)).status_code
        == 200
    )
    assert ApiKey.objects.count() == 1
    refused = admin_client.post(ADD_URL, issue_data(api=api, organization=organization))
    assert refused.status_code == HTTPStatus.OK
    assert form_errors(refused) == {"__all__": ["KEY_LIMIT_REACHED"]}
    assert ApiKey.objects.count() == 1


def test_the_issue_form_applies_the_lifetime_and_refuses_a_later_expiry(admin_client, api, user):
    services.platform_key_policy_update(
        **{**NO_LIMITS, "max_lifetime_days": 10}, actor=services.Actor()
    )
    assert admin_client.post(ADD_URL, issue_data(api=api, user=user)).status_code == 200
    key = ApiKey.objects.get()
    assert key.expires_at is not None and key.expires_at <= timezone.now() + timedelta(days=10)
    refused = admin_client.post(
        ADD_URL, issue_data(api=api, user=user, expires_at=timezone.now() + timedelta(days=20))
    )
    assert form_errors(refused) == {"expires_at": ["EXPIRES_AT_BEYOND_POLICY"]}
    assert ApiKey.objects.count() == 1


def test_a_new_organization_can_be_given_its_policy_on_the_add_page(admin_client):
    response = admin_client.post(
        admin_url("organization_add"),
        {
            "name": "Newco",
            "code": "org_newco",
            **management("memberships", total=0, initial=0),
            **management("key_policy", total=1, initial=0),
            "key_policy-0-max_lifetime_days": "45",
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.context and response.context["errors"]
    row = OrganizationKeyPolicy.objects.get(organization__code="org_newco")
    assert (row.max_lifetime_days, row.max_active_keys, row.max_idle_days) == (45, None, None)
