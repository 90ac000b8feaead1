"""Key policies in the service layer (every door calls these): lifetimes, the active-key
limit (exact under concurrency), which policy applies to whom, idle revocation (with counts
still in Redis), and the policy writes with their audit events."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from apikeys import exceptions as errors
from apikeys import services
from apikeys.models import ApiKey, AuditEvent, OrganizationKeyPolicy
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NO_LIMITS: dict[str, Any] = {
    "max_lifetime_days": None,
    "max_active_keys": None,
    "max_idle_days": None,
}


def set_org_policy(organization, **limits: Any) -> services.KeyPolicy:
    return services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, **limits}, actor=services.Actor.system()
    )


def set_default(**limits: Any) -> services.KeyPolicy:
    return services.platform_key_policy_update(
        **{**NO_LIMITS, **limits}, actor=services.Actor.system()
    )


def issue(api, **owner: Any) -> services.IssuedKey:
    return services.api_key_issue(name="Key", api=api, actor=services.Actor.system(), **owner)


def age(api_key: ApiKey, *, days: int, verified_days_ago: int | None = None) -> None:
    """Move a key's creation (and last verification) into the past, behind the services."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).update(
        created_on=now - timedelta(days=days),
        last_verified_on=(
            None if verified_days_ago is None else now - timedelta(days=verified_days_ago)
        ),
    )


# --------------------------------------------------------------------------- lifetime


def test_a_key_without_expiry_gets_the_policys_lifetime(api, organization):
    set_org_policy(organization, max_lifetime_days=90)
    before = timezone.now()
    key = issue(api, organization=organization).api_key
    assert before + timedelta(days=90) <= key.expires_at <= timezone.now() + timedelta(days=90)


def test_an_expiry_within_the_lifetime_is_kept_and_a_later_one_refused(api, organization):
    set_org_policy(organization, max_lifetime_days=30)
    soon = timezone.now() + timedelta(days=29)
    key = services.api_key_issue(
        name="Key", api=api, organization=organization, expires_at=soon, actor=services.Actor()
    ).api_key
    assert key.expires_at == soon
    with pytest.raises(errors.ExpiresAtBeyondPolicy) as refused:
        services.api_key_issue(
            name="Key",
            api=api,
            organization=organization,
            expires_at=timezone.now() + timedelta(days=31),
            actor=services.Actor(),
        )
    assert (refused.value.code, refused.value.field) == ("EXPIRES_AT_BEYOND_POLICY", "expires_at")
    assert ApiKey.objects.count() == 1


def test_rotation_keeps_the_expiry(api, organization):
    set_org_policy(organization, max_lifetime_days=10)
    key = issue(api, organization=organization).api_key
    set_org_policy(organization, max_lifetime_days=1)
    rotated = services.api_key_rotate(api_key=key, actor=services.Actor()).api_key
    assert rotated.expires_at == key.expires_at
    assert ApiKey.objects.get(pk=key.pk).expires_at == key.expires_at


def test_tightening_a_policy_never_changes_existing_keys(api, organization):
    keys = [issue(api, organization=organization).api_key for _ in range(3)]
    set_org_policy(organization, max_lifetime_days=1, max_active_keys=1)
    for key in keys:
        row = ApiKey.objects.get(pk=key.pk)
        assert (row.status, row.expires_at) == (ApiKey.Status.ACTIVE, None)


# --------------------------------------------------------------------------- active keys


def test_creating_past_the_active_key_limit_is_refused(api, organization):
    set_org_policy(organization, max_active_keys=2)
    issue(api, organization=organization)
    issue(api, organization=organization)
    with pytest.raises(errors.KeyLimitReached) as refused:
        issue(api, organization=organization)
    assert refused.value.code == "KEY_LIMIT_REACHED" and refused.value.status == 409
    assert ApiKey.objects.filter(organization=organization).count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_ISSUED).count() == 2


def test_revoked_and_expired_keys_do_not_count(api, organization):
    set_org_policy(organization, max_active_keys=1)
    first = issue(api, organization=organization).api_key
    services.api_key_revoke(api_key=first, actor=services.Actor())
    second = issue(api, organization=organization).api_key
    ApiKey.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert issue(api, organization=organization).api_key.status == ApiKey.Status.ACTIVE


def test_the_limit_is_per_owner(api, organization):
    set_org_policy(organization, max_active_keys=1)
    member = UserFactory()
    other = UserFactory()
    MembershipFactory(organization=organization, user=member)
    MembershipFactory(organization=organization, user=other)
    issue(api, organization=organization)
    # The organization is full; each member still has a key of their own to make.
    issue(api, user=member)
    issue(api, user=other)
    with pytest.raises(errors.KeyLimitReached):
        issue(api, user=member)
    with pytest.raises(errors.KeyLimitReached):
        issue(api, organization=organization)


# --------------------------------------------------------------------------- which policy


def test_an_organization_without_a_policy_has_the_platform_default(api, organization):
    set_default(max_active_keys=1, max_lifetime_days=5)
    policy = services.key_policy_for_organization(organization)
    assert (policy.max_active_keys, policy.max_lifetime_days, policy.source) == (
        1,
        5,
        "platform_default",
    )
    issue(api, organization=organization)
    with pytest.raises(errors.KeyLimitReached):
        issue(api, organization=organization)


def test_an_organizations_own_policy_replaces_the_default(api, organization):
    set_default(max_active_keys=1)
    set_org_policy(organization, max_active_keys=None)
    for _ in range(3):
        issue(api, organization=organization)
    services.organization_key_policy_clear(organization=organization, actor=services.Actor())
    assert services.key_policy_for_organization(organization).max_active_keys == 1


def test_a_user_in_no_organization_gets_the_platform_default(api):
    set_default(max_lifetime_days=7, max_active_keys=1)
    loner = UserFactory()
    policy = services.key_policy_for_user(loner)
    assert (policy.max_lifetime_days, policy.max_active_keys) == (7, 1)
    key = issue(api, user=loner).api_key
    assert key.expires_at is not None and key.expires_at <= timezone.now() + timedelta(days=7)
    with pytest.raises(errors.KeyLimitReached):
        issue(api, user=loner)


def test_a_member_of_several_organizations_gets_the_strictest_limit_of_each_kind(api):
    set_default(max_idle_days=100)
    lax, strict, defaulted = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    set_org_policy(lax, max_lifetime_days=365, max_active_keys=2)
    set_org_policy(strict, max_lifetime_days=30, max_active_keys=None, max_idle_days=200)
    member = UserFactory()
    for org in (lax, strict, defaulted):
        MembershipFactory(organization=org, user=member)
    policy = services.key_policy_for_user(member)
    # The smallest lifetime (strict), the only key limit (lax), the smallest idle time (the
    # platform default, which applies to the organization without a policy).
    assert policy.limits() == {"max_lifetime_days": 30, "max_active_keys": 2, "max_idle_days": 100}
    assert policy.source == "strictest"
    with pytest.raises(errors.ExpiresAtBeyondPolicy):
        services.api_key_issue(
            name="Key",
            api=api,
            user=member,
            expires_at=timezone.now() + timedelta(days=31),
            actor=services.Actor(),
        )
    issue(api, user=member)
    issue(api, user=member)
    with pytest.raises(errors.KeyLimitReached):
        issue(api, user=member)


def test_another_organizations_policy_does_not_reach_its_non_members(api):
    strict, other = OrganizationFactory(), OrganizationFactory()
    set_org_policy(strict, max_active_keys=1)
    outsider = UserFactory()
    MembershipFactory(organization=other, user=outsider)
    for _ in range(2):
        issue(api, organization=other)
        issue(api, user=outsider)
    assert services.key_policy_for_user(outsider).max_active_keys is None


# --------------------------------------------------------------------------- policy writes


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_lifetime_days", 0),
        ("max_lifetime_days", 3651),
        ("max_active_keys", 10001),
        ("max_active_keys", -1),
        ("max_idle_days", True),
        ("max_idle_days", "30"),
        ("max_idle_days", 1.5),
    ],
)
def test_a_policy_out_of_range_is_refused_naming_the_field(organization, field, value):
    with pytest.raises(errors.ValidationFailed) as refused:
        set_org_policy(organization, **{field: value})
    assert refused.value.field == field
    with pytest.raises(errors.ValidationFailed):
        set_default(**{field: value})
    assert not OrganizationKeyPolicy.objects.exists()
    assert services.platform_key_policy().limits() == NO_LIMITS
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.KEY_POLICY_CHANGED).exists()


def test_policy_changes_are_audited_with_what_changed(organization, user):
    actor = services.Actor(user=user, ip="198.51.100.7")
    services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, "max_active_keys": 5}, actor=actor
    )
    services.organization_key_policy_set(
        organization=organization, **{**NO_LIMITS, "max_active_keys": 5}, actor=actor
    )  # no change: no event
    services.platform_key_policy_update(**{**NO_LIMITS, "max_idle_days": 30}, actor=actor)
    services.organization_key_policy_clear(organization=organization, actor=actor)
    events = list(
        AuditEvent.objects.filter(action=AuditEvent.Action.KEY_POLICY_CHANGED).order_by("id")
    )
    assert [(e.target_type, e.actor_user, e.org_code) for e in events] == [
        ("organization", user, organization.code),
        ("platform", user, ""),
        ("organization", user, organization.code),
    ]
    assert events[0].details == {"changes": {"max_active_keys": [None, 5]}, "created": True}
    assert events[1].details == {"changes": {"max_idle_days": [None, 30]}}
    assert events[2].details["removed"]["max_active_keys"] == 5


# --------------------------------------------------------------------------- concurrency


def _issue_until_answered(api, owner: dict[str, Any], barrier: threading.Barrier) -> str:
    """Issue one key from this thread, as a client would retry a 'database is locked'
    (SQLite's answer to a writer while another writes): the answer is issued or refused."""
    barrier.wait()
    try:
        for _ in range(400):
            try:
                issue(api, **owner)
                return "issued"
            except errors.KeyLimitReached:
                return "refused"
            except OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.01)
        return "gave up"
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["organization", "user"])
def test_the_active_key_limit_is_exact_under_16_concurrent_creates(api, kind):
    limit = 5
    if kind == "organization":
        owner: dict[str, Any] = {"organization": OrganizationFactory()}
        set_org_policy(owner["organization"], max_active_keys=limit)
    else:
        owner = {"user": UserFactory()}
        set_default(max_active_keys=limit)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def work() -> None:
        outcomes.append(_issue_until_answered(api, owner, barrier))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["issued"] * limit + ["refused"] * (16 - limit)
    assert ApiKey.objects.filter(status=ApiKey.Status.ACTIVE, **owner).count() == limit


# --------------------------------------------------------------------------- idle keys


def test_keys_idle_past_the_policy_are_revoked_with_reason_idle_by_the_system(api, organization):
    set_org_policy(organization, max_idle_days=30)
    never_used = issue(api, organization=organization).api_key
    used_long_ago = issue(api, organization=organization).api_key
    used_lately = issue(api, organization=organization).api_key
    new = issue(api, organization=organization).api_key
    age(never_used, days=31)
    age(used_long_ago, days=100, verified_days_ago=31)
    age(used_lately, days=100, verified_days_ago=29)

    assert services.api_keys_revoke_idle() == 2

    states = {
        k.pk: ApiKey.objects.get(pk=k.pk).status
        for k in (never_used, used_long_ago, used_lately, new)
    }
    assert states == {
        never_used.pk: "revoked",
        used_long_ago.pk: "revoked",
        used_lately.pk: "active",
        new.pk: "active",
    }
    events = AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_REVOKED)
    assert sorted(e.target_id for e in events) == sorted([never_used.pk, used_long_ago.pk])
    for event in events:
        assert event.details["reason"] == "idle" and event.details["max_idle_days"] == 30
        assert (event.actor_type, event.actor_label) == ("system", "system")
        assert event.org_code == organization.code
    # Safe to run twice: nothing more to revoke, nothing recorded.
    assert services.api_keys_revoke_idle() == 0
    assert events.count() == 2


def test_idle_revocation_follows_each_owners_policy(api):
    set_default(max_idle_days=10)
    patient, defaulted = OrganizationFactory(), OrganizationFactory()
    set_org_policy(patient, max_idle_days=60)
    member = UserFactory()
    MembershipFactory(organization=patient, user=member)
    loner = UserFactory()
    keys = {
        "patient": issue(api, organization=patient).api_key,
        "defaulted": issue(api, organization=defaulted).api_key,
        "member": issue(api, user=member).api_key,
        "loner": issue(api, user=loner).api_key,
    }
    for key in keys.values():
        age(key, days=20)
    assert services.api_keys_revoke_idle() == 2
    status = {name: ApiKey.objects.get(pk=k.pk).status for name, k in keys.items()}
    assert status == {
        "patient": "active",
        "defaulted": "revoked",
        "member": "active",
        "loner": "revoked",
    }


def test_without_an_idle_limit_nothing_is_revoked(api, organization):
    key = issue(api, organization=organization).api_key
    age(key, days=5000)
    set_default(max_lifetime_days=10, max_active_keys=10)
    assert services.api_keys_revoke_idle() == 0
    assert ApiKey.objects.get(pk=key.pk).status == "active"


def test_expired_and_revoked_keys_are_not_revoked_again(api, organization):
    set_org_policy(organization, max_idle_days=1)
    expired = issue(api, organization=organization).api_key
    revoked = issue(api, organization=organization).api_key
    services.api_key_revoke(api_key=revoked, actor=services.Actor())
    for key in (expired, revoked):
        age(key, days=10)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert services.api_keys_revoke_idle() == 0
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_REVOKED).count() == 1


def test_the_command_revokes_idle_keys(api, organization, capsys):
    set_org_policy(organization, max_idle_days=5)
    key = issue(api, organization=organization).api_key
    age(key, days=6)
    call_command("apikeys_revoke_idle")
    assert "Revoked 1 idle key(s)." in capsys.readouterr().out
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"


@pytest.fixture
def counts_in_redis(key_cache: redis.Redis) -> redis.Redis:
    """Verifications counted in Redis and written back later (tests/conftest.py)."""
    return key_cache


@pytest.mark.xdist_group("servers")
def test_a_key_verified_lately_is_not_revoked_while_its_count_is_still_in_redis(
    counts_in_redis, api, organization
):
    set_org_policy(organization, max_idle_days=30)
    issued = issue(api, organization=organization)
    idle = issue(api, organization=organization).api_key
    age(issued.api_key, days=100, verified_days_ago=40)
    age(idle, days=100, verified_days_ago=40)
    assert services.api_key_verify(key=issued.plaintext).is_valid
    # Counted in Redis only: the stored column still says 40 days ago.
    stored = ApiKey.objects.filter(pk=issued.api_key.pk).values_list("last_verified_on", flat=True)
    assert stored.get() < timezone.now() - timedelta(days=39)

    assert services.api_keys_revoke_idle() == 1

    assert ApiKey.objects.get(pk=issued.api_key.pk).status == "active"
    assert ApiKey.objects.get(pk=idle.pk).status == "revoked"
    assert services.api_key_verify(key=issued.plaintext).is_valid


def test_the_scheduler_runs_idle_revocation_and_announces_each_key(api, organization):
    from apikeys import tasks
    from apikeys.models import WebhookEvent

    assert "api_key.idle_revoke" in {job.name for job in tasks.PERIODIC_JOBS}
    set_org_policy(organization, max_idle_days=30)
    idle = issue(api, organization=organization).api_key
    age(idle, days=31)

    assert tasks.periodic_job_run.call("api_key.idle_revoke", 1) == 1

    assert ApiKey.objects.get(pk=idle.pk).status == "revoked"
    types = WebhookEvent.objects.filter(api_key=idle).order_by("created_on")
    assert list(types.values_list("type", flat=True)) == ["api_key.created", "api_key.idle_revoked"]
