"""Usage limits per key (rate limit, credits), PATCH, and usage history: the contract's
fields and codes, on whichever backend the suite runs (SQLite, or PostgreSQL with Redis)."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from apikeys import keycache, services
from apikeys.models import ApiKey, AuditEvent
from tests.api.conftest import error_codes


def create(client, api, organization, **extra):
    response = client.post(
        "/api/v1/api_keys",
        {"name": "Limited", "api_id": api.id, "org_code": organization.code, **extra},
        format="json",
    )
    return response


def verify(client, key, **extra):
    response = client.post("/api/v1/api_keys/verify", {"api_key": key, **extra}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


def key_object(client, key_id):
    return client.get(f"/api/v1/api_keys/{key_id}").json()["api_key"]


def test_create_with_limits_shows_them_on_the_key(client_all, api, organization):
    body = create(
        client_all,
        api,
        organization,
        ratelimit={"limit": 5, "duration": 60},
        credits={"remaining": 10, "refill": {"interval": "daily", "amount": 10}},
    ).json()
    key = key_object(client_all, body["api_key"]["id"])
    assert key["ratelimit"] == {"limit": 5, "duration": 60}
    assert key["credits"] == {"remaining": 10, "refill": {"interval": "daily", "amount": 10}}


def test_an_unlimited_key_shows_null_limits(client_all, issued_key):
    key = key_object(client_all, issued_key.api_key.id)
    assert key["ratelimit"] is None and key["credits"] is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"ratelimit": {"limit": 0, "duration": 60}}, "ratelimit.limit"),
        ({"ratelimit": {"limit": 10001, "duration": 60}}, "ratelimit.limit"),
        ({"ratelimit": {"limit": 5, "duration": 86401}}, "ratelimit.duration"),
        ({"ratelimit": {"limit": "5", "duration": 60}}, "ratelimit.limit"),
        ({"ratelimit": {"limit": True, "duration": 60}}, "ratelimit.limit"),
        ({"ratelimit": {"limit": 5}}, "ratelimit.duration"),
        ({"ratelimit": {"limit": 5, "duration": 60, "x": 1}}, "ratelimit.x"),
        ({"ratelimit": [5, 60]}, "ratelimit"),
        ({"credits": {"remaining": -1}}, "credits.remaining"),
        ({"credits": {"remaining": 1_000_000_001}}, "credits.remaining"),
        ({"credits": {}}, "credits.remaining"),
        (
            {"credits": {"remaining": 1, "refill": {"interval": "weekly", "amount": 1}}},
            "credits.refill.interval",
        ),
        (
            {"credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 0}}},
            "credits.refill.amount",
        ),
        ({"credits": {"remaining": 1, "refill": {"interval": "daily"}}}, "credits.refill.amount"),
        ({"credits": {"remaining": 1, "refill": "daily"}}, "credits.refill"),
        ({"credits": 5}, "credits"),
    ],
)
def test_bad_limit_shapes_are_400_naming_the_field(client_all, api, organization, extra, field):
    response = create(client_all, api, organization, **extra)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"][0]["field"] == field
    assert not ApiKey.objects.filter(name="Limited").exists()


def test_rate_limit_refuses_past_the_limit_with_reset(client_all, api, organization):
    body = create(client_all, api, organization, ratelimit={"limit": 2, "duration": 3600}).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    first, second, third = (verify(client_all, key) for _ in range(3))
    assert first["is_valid"] and first["ratelimit"]["limit"] == 2
    assert first["ratelimit"]["remaining"] == 1 and second["ratelimit"]["remaining"] == 0
    assert third["is_valid"] is False and third["code"] == "API_KEY_RATE_LIMITED"
    assert third["key_id"] == key_id and third["org_code"] == organization.code
    assert third["ratelimit"]["limit"] == 2 and third["ratelimit"]["remaining"] == 0
    assert third["ratelimit"]["reset"] > first["last_verified_on"]
    # A refused verification is not counted.
    assert key_object(client_all, key_id)["verification_count"] == 2


def test_credits_are_used_by_cost_and_never_below_zero(client_all, api, organization):
    body = create(client_all, api, organization, credits={"remaining": 5}).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    assert verify(client_all, key, cost=3)["credits_remaining"] == 2
    refused = verify(client_all, key, cost=3)
    assert refused["code"] == "API_KEY_USAGE_EXCEEDED" and refused["credits_remaining"] == 0
    assert refused["key_id"] == key_id and refused["org_code"] == organization.code
    assert verify(client_all, key, cost=0)["credits_remaining"] == 2
    assert verify(client_all, key, cost=2)["credits_remaining"] == 0
    assert verify(client_all, key)["code"] == "API_KEY_USAGE_EXCEEDED"
    read = key_object(client_all, key_id)
    assert read["credits"]["remaining"] == 0 and read["verification_count"] == 3


@pytest.mark.parametrize("cost", [-1, 1001, "1", 1.5, True])
def test_a_bad_cost_is_400(client_all, issued_key, cost):
    response = client_all.post(
        "/api/v1/api_keys/verify", {"api_key": issued_key.plaintext, "cost": cost}, format="json"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"][0]["field"] == "cost"


def test_the_checks_run_in_order_audience_before_limits(client_all, api, organization):
    body = create(client_all, api, organization, credits={"remaining": 0}).json()
    key = body["api_key"]["key"]
    assert verify(client_all, key, audience="https://other")["code"] == "API_KEY_WRONG_AUDIENCE"
    assert verify(client_all, key)["code"] == "API_KEY_USAGE_EXCEEDED"


def test_refill_resets_credits_in_a_later_period(client_all, api, organization):
    body = create(
        client_all,
        api,
        organization,
        credits={"remaining": 0, "refill": {"interval": "daily", "amount": 3}},
    ).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    assert verify(client_all, key)["code"] == "API_KEY_USAGE_EXCEEDED"
    # The remaining count belongs to yesterday: the next verification starts from amount.
    ApiKey.objects.filter(pk=key_id).update(
        credits_period=ApiKey.objects.get(pk=key_id).credits_period - 1,
        limits_version=99,
    )
    keycache.invalidate([key_id])
    assert key_object(client_all, key_id)["credits"]["remaining"] == 3
    assert verify(client_all, key)["credits_remaining"] == 2


def test_patch_changes_limits_name_and_expiry_audited_and_at_once(client_all, api, organization):
    body = create(client_all, api, organization).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    assert verify(client_all, key)["is_valid"]  # warm on every path
    later = (timezone.now() + timedelta(days=3)).isoformat()
    response = client_all.patch(
        f"/api/v1/api_keys/{key_id}",
        {"name": "Renamed", "credits": {"remaining": 1}, "expires_at": later},
        format="json",
    )
    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["api_key"]["name"] == "Renamed"
    assert verify(client_all, key)["credits_remaining"] == 0
    assert verify(client_all, key)["code"] == "API_KEY_USAGE_EXCEEDED"
    event = AuditEvent.objects.filter(action="api_key.updated", target_id=key_id).get()
    assert event.details["after"]["credits"] == {"remaining": 1, "refill": None}
    # null removes the limit.
    client_all.patch(f"/api/v1/api_keys/{key_id}", {"credits": None}, format="json")
    assert verify(client_all, key)["is_valid"]
    assert key_object(client_all, key_id)["credits"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 5}, "name"),
        ({"ratelimit": {"limit": 0, "duration": 1}}, "ratelimit.limit"),
        ({"expires_at": "yesterday"}, "expires_at"),
        ({"status": "revoked"}, "status"),
    ],
)
def test_patch_refuses_bad_bodies_naming_the_field(client_all, issued_key, body, field):
    response = client_all.patch(f"/api/v1/api_keys/{issued_key.api_key.id}", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["errors"][0]["field"] == field


def test_patch_of_a_revoked_key_is_refused(client_all, issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    response = client_all.patch(
        f"/api/v1/api_keys/{issued_key.api_key.id}", {"name": "x"}, format="json"
    )
    assert error_codes(response) == ["API_KEY_REVOKED"]


def test_patch_needs_update_scope_and_an_existing_key(make_client, client_all, issued_key):
    reader = make_client(["read:api_keys"])
    path = f"/api/v1/api_keys/{issued_key.api_key.id}"
    assert reader.patch(path, {"name": "x"}, format="json").status_code == HTTPStatus.FORBIDDEN
    missing = client_all.patch("/api/v1/api_keys/api_key_" + "0" * 32, {"name": "x"}, format="json")
    assert missing.status_code == HTTPStatus.NOT_FOUND


def test_usage_buckets_add_up_to_the_verification_count(client_all, api, organization, actor):
    body = create(client_all, api, organization, ratelimit={"limit": 3, "duration": 3600}).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    for _ in range(5):
        verify(client_all, key)
    verify(client_all, key, audience="https://other")
    today = timezone.now().date().isoformat()
    for granularity in ("day", "hour"):
        response = client_all.get(
            f"/api/v1/api_keys/{key_id}/usage",
            {"from": today, "to": today, "granularity": granularity},
        )
        assert response.status_code == HTTPStatus.OK, response.content
        usage = response.json()["usage"]
        assert len(usage) == (1 if granularity == "day" else 24)
        assert sum(b["verified"] for b in usage) == 3
        assert sum(b["rate_limited"] for b in usage) == 2
        assert sum(b["wrong_audience"] for b in usage) == 1
    assert key_object(client_all, key_id)["verification_count"] == 3
    keycache.write_back_now()
    usage = client_all.get(f"/api/v1/api_keys/{key_id}/usage", {"from": today, "to": today}).json()[
        "usage"
    ]
    assert usage[0]["verified"] == 3 and usage[0]["rate_limited"] == 2


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"from": "2026-01-01", "to": "2027-01-02"}, 400, "USAGE_RANGE_TOO_LARGE"),
        (
            {"from": "2026-01-01", "to": "2026-01-08", "granularity": "hour"},
            400,
            "USAGE_RANGE_TOO_LARGE",
        ),
        ({"from": "2026-13-01", "to": "2026-01-02"}, 400, "INVALID_FIELD"),
        ({"to": "2026-01-02"}, 400, "INVALID_FIELD"),
        ({"from": "2026-01-01", "to": "2026-01-02", "granularity": "week"}, 400, "INVALID_FIELD"),
        ({"from": "2026-01-01", "to": "2026-01-02", "page": "1"}, 400, "UNKNOWN_PARAMETER"),
    ],
)
def test_usage_query_errors(client_all, issued_key, query, status, code):
    response = client_all.get(f"/api/v1/api_keys/{issued_key.api_key.id}/usage", query)
    assert response.status_code == status
    assert error_codes(response) == [code]


def test_usage_of_an_unknown_key_is_404(client_all):
    response = client_all.get(
        "/api/v1/api_keys/api_key_" + "0" * 32 + "/usage",
        {"from": "2026-01-01", "to": "2026-01-01"},
    )
    assert error_codes(response) == ["API_KEY_NOT_FOUND"]


@pytest.mark.parametrize("days", [0, -1, "400", True])
def test_a_bad_usage_retention_stops_start_up(settings, days):
    from apikeys.checks import check_usage_retention

    settings.APIKEYS = {**settings.APIKEYS, "USAGE_RETENTION_DAYS": days}
    assert [e.id for e in check_usage_retention()] == ["apikeys.E010"]


def test_prune_deletes_only_hours_older_than_the_retention(client_all, issued_key, settings):
    from io import StringIO

    from django.core.management import call_command

    from apikeys.models import ApiKeyUsage

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for days in (1, 399, 401):
        ApiKeyUsage.objects.create(
            api_key=issued_key.api_key, start=now - timedelta(days=days), verified=1
        )
    # A key's open hour (on its row, from the Redis write-back) that old goes too.
    from apikeys.models import ApiKey

    keys = ApiKey.objects.filter(pk=issued_key.api_key.pk)
    keys.update(usage_hour=now - timedelta(days=401), usage_hour_verified=5)
    out = StringIO()
    call_command("apikeys_prune_usage", stdout=out)
    assert ApiKeyUsage.objects.count() == 2 and "Deleted 2" in out.getvalue()
    assert keys.values_list("usage_hour", "usage_hour_verified").get() == (None, 0)
    keys.update(usage_hour=now - timedelta(days=1), usage_hour_verified=5)
    call_command("apikeys_prune_usage", "--days", "30", stdout=out)
    assert ApiKeyUsage.objects.count() == 1
    assert keys.values_list("usage_hour_verified", flat=True).get() == 5


def test_usage_exceeded_is_one_webhook_event_per_refill_period(
    client_all, api, organization, settings
):
    from apikeys.models import WebhookEvent

    settings.APIKEYS = {**settings.APIKEYS, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": True}
    services.webhook_create(
        endpoint_url="http://127.0.0.1:9/in",
        event_types=["api_key.usage_exceeded"],
        actor=services.Actor.system(),
    )
    body = create(
        client_all,
        api,
        organization,
        credits={"remaining": 1, "refill": {"interval": "daily", "amount": 1}},
    ).json()
    key, key_id = body["api_key"]["key"], body["api_key"]["id"]
    assert verify(client_all, key)["is_valid"]
    for _ in range(3):
        assert verify(client_all, key)["code"] == "API_KEY_USAGE_EXCEEDED"
    assert (
        WebhookEvent.objects.filter(type="api_key.usage_exceeded", api_key_id=key_id).count() == 1
    )


def test_patch_of_expires_at_respects_the_owners_key_policy(client_all, issued_key, organization):
    services.organization_key_policy_set(
        organization=organization,
        max_lifetime_days=30,
        max_active_keys=None,
        max_idle_days=None,
        actor=services.Actor.system(),
    )
    path = f"/api/v1/api_keys/{issued_key.api_key.id}"
    later = (timezone.now() + timedelta(days=60)).isoformat()
    assert error_codes(client_all.patch(path, {"expires_at": later}, format="json")) == [
        "EXPIRES_AT_BEYOND_POLICY"
    ]
    sooner = (timezone.now() + timedelta(days=10)).isoformat()
    assert client_all.patch(path, {"expires_at": sooner}, format="json").status_code == 200
    # "Never" under a lifetime policy: the longest the policy allows, from the key's creation.
    response = client_all.patch(path, {"expires_at": None}, format="json")
    assert response.status_code == 200
    assert response.json()["api_key"]["expires_at"] is not None


def test_limit_refusals_are_answers_not_guesses_for_the_failure_limit(
    client_all, api, organization, settings
):
    """Past the per-application failure limit, guesses answer 429; a good key refused by its
    own limits is no guess: it keeps getting the contract's 200 API_KEY_RATE_LIMITED and
    does not use up the application's allowance of failures."""
    settings.APIKEYS = {**settings.APIKEYS, "VERIFY_FAILURE_LIMIT": 2}
    key = create(client_all, api, organization, ratelimit={"limit": 1, "duration": 3600}).json()
    assert verify(client_all, key["api_key"]["key"])["is_valid"]
    for _ in range(4):
        answer = verify(client_all, key["api_key"]["key"])
        assert answer["code"] == "API_KEY_RATE_LIMITED"
    for _ in range(2):  # the whole allowance of failures is still there
        assert verify(client_all, "k_live_guess")["code"] == "API_KEY_INVALID"
    response = client_all.post(
        "/api/v1/api_keys/verify", {"api_key": "k_live_guess"}, format="json"
    )
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
