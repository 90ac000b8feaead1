"""Key policies over the Management API: GET|PUT /api/v1/organizations/{org_code}/api_key_policy,
and the policy's refusals of POST /api/v1/api_keys."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any

import pytest
from django.utils import timezone

from apikeys import services
from apikeys.models import ApiKey, AuditEvent, OrganizationKeyPolicy
from tests.api.conftest import error_codes
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

POLICY = {"max_lifetime_days": 90, "max_active_keys": 10, "max_idle_days": None}
NO_LIMITS: dict[str, Any] = {
    "max_lifetime_days": None,
    "max_active_keys": None,
    "max_idle_days": None,
}


def url(org_code: str) -> str:
    return f"/api/v1/organizations/{org_code}/api_key_policy"


def test_an_organization_without_a_policy_answers_the_platform_default(client_all, organization):
    services.platform_key_policy_update(
        **{**NO_LIMITS, "max_idle_days": 60}, actor=services.Actor.system()
    )
    response = client_all.get(url(organization.code))
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "code": "OK",
        "message": "Success",
        "api_key_policy": {**NO_LIMITS, "max_idle_days": 60},
        "source": "platform_default",
    }


def test_put_sets_the_organizations_own_policy_and_get_reads_it_back(client_all, organization):
    response = client_all.put(url(organization.code), POLICY, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["api_key_policy"] == POLICY
    assert response.json()["source"] == "organization"
    assert client_all.get(url(organization.code)).json()["api_key_policy"] == POLICY
    row = OrganizationKeyPolicy.objects.get(organization=organization)
    assert (row.max_lifetime_days, row.max_active_keys, row.max_idle_days) == (90, 10, None)
    event = AuditEvent.objects.get(action=AuditEvent.Action.KEY_POLICY_CHANGED)
    assert event.actor_application == client_all.application
    assert event.org_code == organization.code
    # All null: no limits at all, still the organization's own (not the default).
    cleared = client_all.put(url(organization.code), NO_LIMITS, format="json").json()
    assert (cleared["api_key_policy"], cleared["source"]) == (NO_LIMITS, "organization")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({**POLICY, "max_lifetime_days": 0}, "INVALID_FIELD", "max_lifetime_days"),
        ({**POLICY, "max_lifetime_days": 3651}, "INVALID_FIELD", "max_lifetime_days"),
        ({**POLICY, "max_active_keys": 10001}, "INVALID_FIELD", "max_active_keys"),
        ({**POLICY, "max_active_keys": "10"}, "INVALID_FIELD", "max_active_keys"),
        ({**POLICY, "max_idle_days": 1.5}, "INVALID_FIELD", "max_idle_days"),
        ({**POLICY, "max_idle_days": True}, "INVALID_FIELD", "max_idle_days"),
        ({**POLICY, "max_idle_days": []}, "INVALID_FIELD", "max_idle_days"),
        ({"max_lifetime_days": 5, "max_active_keys": 5}, "FIELD_REQUIRED", "max_idle_days"),
        ({**POLICY, "max_keys": 3}, "UNKNOWN_FIELD", "max_keys"),
    ],
)
def test_a_bad_policy_is_400_naming_the_field_and_changes_nothing(
    client_all, organization, body, code, field
):
    response = client_all.put(url(organization.code), body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == [code]
    assert response.json()["errors"][0]["field"] == field
    assert not OrganizationKeyPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.KEY_POLICY_CHANGED).exists()


@pytest.mark.parametrize("body", [[], "policy", 5, None])
def test_a_body_that_is_not_an_object_is_400(client_all, organization, body):
    response = client_all.put(url(organization.code), body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not OrganizationKeyPolicy.objects.exists()


@pytest.mark.parametrize("method", ["get", "put"])
@pytest.mark.parametrize("org_code", ["org_nosuchorg", "not-a-code", "x" * 300])
def test_an_unknown_organization_is_404(client_all, method, org_code):
    if method == "get":
        response = client_all.get(url(org_code))
    else:
        response = client_all.put(url(org_code), POLICY, format="json")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert error_codes(response) == ["ORGANIZATION_NOT_FOUND"]


def test_other_methods_are_405(client_all, organization):
    for method in ("post", "patch", "delete"):
        response = getattr(client_all, method)(url(organization.code), POLICY, format="json")
        assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
        assert error_codes(response) == ["METHOD_NOT_ALLOWED"]


def test_read_scope_cannot_change_a_policy(make_client, organization):
    reader = make_client(["read:organizations"])
    response = reader.put(url(organization.code), POLICY, format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert error_codes(response) == ["INSUFFICIENT_SCOPE"]
    assert not OrganizationKeyPolicy.objects.exists()
    other_scopes = make_client(["read:api_keys", "create:api_keys", "update:api_keys"])
    assert other_scopes.get(url(organization.code)).status_code == HTTPStatus.FORBIDDEN


def test_one_organizations_policy_changes_nothing_of_another(client_all):
    acme, globex = OrganizationFactory(), OrganizationFactory()
    client_all.put(url(acme.code), {**NO_LIMITS, "max_active_keys": 1}, format="json")
    assert client_all.get(url(globex.code)).json()["source"] == "platform_default"
    assert client_all.get(url(globex.code)).json()["api_key_policy"] == NO_LIMITS
    assert list(OrganizationKeyPolicy.objects.values_list("organization", flat=True)) == [acme.pk]


# --------------------------------------------------------------------------- enforcement


def create(client, api, **owner: Any) -> Any:
    return client.post(
        "/api/v1/api_keys",
        {"name": "Key", "api_id": api.id, "scope_ids": [], **owner},
        format="json",
    )


def test_create_gets_the_policys_lifetime_and_refuses_a_later_expiry(client_all, api, organization):
    client_all.put(url(organization.code), {**NO_LIMITS, "max_lifetime_days": 30}, format="json")
    made = create(client_all, api, org_code=organization.code)
    assert made.status_code == HTTPStatus.CREATED
    key = client_all.get(f"/api/v1/api_keys/{made.json()['api_key']['id']}").json()["api_key"]
    assert key["expires_at"] is not None
    later = (timezone.now() + timedelta(days=31)).isoformat()
    refused = create(client_all, api, org_code=organization.code, expires_at=later)
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(refused) == ["EXPIRES_AT_BEYOND_POLICY"]
    assert refused.json()["errors"][0]["field"] == "expires_at"
    assert ApiKey.objects.count() == 1


def test_create_past_the_limit_is_409_for_the_organization_and_for_a_member(
    client_all, api, organization
):
    client_all.put(url(organization.code), {**NO_LIMITS, "max_active_keys": 1}, format="json")
    member = UserFactory()
    MembershipFactory(organization=organization, user=member)
    assert create(client_all, api, org_code=organization.code).status_code == HTTPStatus.CREATED
    assert create(client_all, api, user_id=member.public_id).status_code == HTTPStatus.CREATED
    for owner in ({"org_code": organization.code}, {"user_id": member.public_id}):
        refused = create(client_all, api, **owner)
        assert refused.status_code == HTTPStatus.CONFLICT
        assert error_codes(refused) == ["KEY_LIMIT_REACHED"]
    assert ApiKey.objects.count() == 2


def test_rotation_keeps_expires_at_over_the_api(client_all, api, organization):
    client_all.put(url(organization.code), {**NO_LIMITS, "max_lifetime_days": 30}, format="json")
    key_id = create(client_all, api, org_code=organization.code).json()["api_key"]["id"]
    before = client_all.get(f"/api/v1/api_keys/{key_id}").json()["api_key"]["expires_at"]
    client_all.put(url(organization.code), {**NO_LIMITS, "max_lifetime_days": 1}, format="json")
    assert (
        client_all.put(f"/api/v1/api_keys/{key_id}", {}, format="json").status_code
        == HTTPStatus.CREATED
    )
    assert client_all.get(f"/api/v1/api_keys/{key_id}").json()["api_key"]["expires_at"] == before
