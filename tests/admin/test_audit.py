"""The audit trail in the admin: filterable by actor, action, organization and date."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys import services
from apikeys.models import AuditEvent
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:apikeys_auditevent_changelist")


def listed(client, **params: str) -> list[AuditEvent]:
    response = client.get(LIST_URL, params)
    assert response.status_code == HTTPStatus.OK
    return list(response.context["cl"].result_list)


@pytest.fixture
def trail(db, organization, api):
    """Events by the system, by a person and by an M2M application, in two organizations."""
    person = UserFactory(first_name="Grace", last_name="Hopper")
    other = OrganizationFactory(name="Globex")
    services.api_key_issue(
        name="Sys", api=api, organization=organization, actor=services.Actor.system()
    )
    services.api_key_issue(
        name="Mine", api=api, organization=other, actor=services.Actor(user=person)
    )
    app = services.m2m_application_create(
        name="Billing", scopes=["create:api_keys"], actor=services.Actor.system()
    )
    services.api_key_issue(
        name="Bot",
        api=api,
        organization=organization,
        actor=services.Actor(application=app.application),
    )
    return {"person": person, "other": other}


def test_filters_by_actor_type_actor_action_and_organization(admin_client, trail, organization):
    assert {e.actor_label for e in listed(admin_client, actor_type__exact="application")} == {
        "Billing"
    }
    assert [e.actor_label for e in listed(admin_client, actor="hopper")] == ["Grace Hopper"]
    assert {e.action for e in listed(admin_client, action__exact="application.created")} == {
        "application.created"
    }
    by_org = listed(admin_client, org_code=organization.code)
    assert by_org and {e.org_code for e in by_org} == {organization.code}
    assert [e.org_code for e in listed(admin_client, org_code=trail["other"].code)] == [
        trail["other"].code
    ]


def test_filters_by_date(admin_client, trail):
    # What the date filter's links carry: aware midnights.
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)

    def between(start, end) -> dict[str, str]:
        return {"occurred_on__gte": str(start), "occurred_on__lt": str(end)}

    day = timedelta(days=1)
    assert (
        len(listed(admin_client, **between(midnight, midnight + day))) == AuditEvent.objects.count()
    )
    assert listed(admin_client, **between(midnight - day, midnight)) == []


def test_search_finds_the_changes_to_one_key(admin_client, issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    found = listed(admin_client, q=issued_key.api_key.id)
    assert sorted(e.action for e in found) == ["api_key.issued", "api_key.revoked"]


def test_the_list_reads_only_the_event_table(admin_client, trail):
    admin_client.get(LIST_URL)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(LIST_URL)
    tables = " ".join(q["sql"] for q in queries if "apikeys_" in q["sql"])
    assert "apikeys_organization" not in tables and "oauth2_provider" not in tables
    assert len(queries) <= 5  # session, user, count, page (and a savepoint on some databases)
