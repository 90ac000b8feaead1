"""API key services: issue, verify, rotate, revoke, and what they refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apikeys import crypto, exceptions, services
from apikeys.models import ApiKey, AuditEvent
from apikeys.services import Verification
from tests.factories import ApiFactory, ScopeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=False)


# ------------------------------------------------------------------ issue


def test_issue_returns_plaintext_once_and_stores_only_the_digest(issued_key):
    key = issued_key.api_key
    key.refresh_from_db()
    assert crypto.is_well_formed(issued_key.plaintext)
    assert key.digest == crypto.digest(
        issued_key.plaintext, "test-only-hashing-secret-not-for-production"
    )
    assert key.key_prefix == issued_key.plaintext[:12]
    assert key.key_suffix == issued_key.plaintext[-4:]
    assert key.status == ApiKey.Status.ACTIVE
    assert key.scope_list == ["read:users", "write:users"]
    assert sorted(key.scopes.values_list("key", flat=True)) == ["read:users", "write:users"]
    assert key.org_code == key.organization.code
    assert key.type == "organization"


def test_key_id_is_time_ordered_uuid7(api, organization, actor):
    ids = [
        services.api_key_issue(
            name=f"k{i}", api=api, organization=organization, actor=actor
        ).api_key.id
        for i in range(5)
    ]
    for key_id in ids:
        assert key_id.startswith("api_key_") and len(key_id) == 40
        assert key_id[8 + 12] == "7"  # the UUID version nibble
    assert ids == sorted(ids)


def test_no_plaintext_reaches_the_database(issued_key, user_key):
    """Search every column of every table for the issued secrets."""
    secrets_ = [issued_key.plaintext, user_key.plaintext]
    fragments = [s[12:-4] for s in secrets_]  # the part never displayed
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(v) for v in row)
                for fragment in fragments:
                    assert fragment not in text, f"secret found in {table}"


def test_str_and_repr_never_show_the_secret(issued_key):
    assert issued_key.plaintext not in str(issued_key.api_key)
    assert issued_key.plaintext not in repr(issued_key.api_key)
    assert issued_key.plaintext not in repr(issued_key)
    assert issued_key.api_key.digest not in str(issued_key.api_key)


def test_issue_accepts_scope_ids_and_keys_and_dedupes(api, read_users, write_users, user, actor):
    issued = services.api_key_issue(
        name="Mixed",
        api=api,
        scopes=[read_users.id, "write:users", "read:users"],
        user=user,
        actor=actor,
    )
    assert issued.api_key.scope_list == ["read:users", "write:users"]
    assert issued.api_key.user_public_id == user.public_id
    assert issued.api_key.type == "user"


@pytest.mark.parametrize(
    "owner, error",
    [
        ({}, exceptions.OwnerRequired),
        ({"both": True}, exceptions.OwnerAmbiguous),
    ],
)
def test_owner_missing_or_both_is_refused_and_nothing_is_written(
    api, organization, user, actor, owner, error
):
    kwargs = {"organization": organization, "user": user} if owner else {}
    with pytest.raises(error):
        services.api_key_issue(name="x", api=api, actor=actor, **kwargs)
    assert ApiKey.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_scope_of_another_api_is_refused(api, organization, actor):
    other_scope = ScopeFactory(api=ApiFactory(), key="read:users")
    for scope in (other_scope, other_scope.id, "nope:nothing"):
        with pytest.raises(exceptions.ScopeNotFound):
            services.api_key_issue(
                name="x", api=api, scopes=[scope], organization=organization, actor=actor
            )
    assert ApiKey.objects.count() == 0


def test_expiry_in_the_past_is_refused(api, organization, actor):
    with pytest.raises(exceptions.ValidationFailed) as info:
        services.api_key_issue(
            name="x",
            api=api,
            organization=organization,
            actor=actor,
            expires_at=timezone.now() - timedelta(seconds=1),
        )
    assert info.value.code == "EXPIRES_AT_IN_PAST"
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 129, None, 5])
def test_bad_names_are_refused(api, organization, actor, name):
    with pytest.raises(exceptions.ValidationFailed):
        services.api_key_issue(name=name, api=api, organization=organization, actor=actor)
    assert ApiKey.objects.count() == 0


def test_owner_constraint_holds_at_the_database_level(issued_key, user):
    key = issued_key.api_key
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(user=user)  # both owners
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(organization=None)  # no owner


def test_status_constraint_holds_at_the_database_level(issued_key):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=issued_key.api_key.pk).update(status="expired")


# ------------------------------------------------------------------ verify


def test_valid_key_verifies_with_owner_scopes_and_api(issued_key, api):
    result = services.api_key_verify(key=issued_key.plaintext, ip="203.0.113.9")
    assert result.code == Verification.VERIFIED and result.is_valid
    assert result.key_id == issued_key.api_key.id
    assert result.status == "active"
    assert result.scopes == ("read:users", "write:users")
    assert result.org_code == issued_key.api_key.org_code
    assert result.user_id is None
    assert result.api_id == api.id
    assert result.audience == api.audience
    assert result.verification_count == 1
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.verification_count == 1
    assert key.last_verified_ip == "203.0.113.9"
    assert key.last_verified_on == result.last_verified_on


def test_user_key_verifies_with_user_id(user_key, user):
    result = services.api_key_verify(key=user_key.plaintext)
    assert result.is_valid
    assert result.user_id == user.public_id
    assert result.org_code is None


def test_every_verification_is_counted(issued_key):
    for expected in range(1, 6):
        assert services.api_key_verify(key=issued_key.plaintext).verification_count == expected
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 5


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "garbage",
        "k_live_" + "a" * 46,  # right shape, wrong checksum
        None,
        42,
        ["k_live_"],
    ],
)
def test_malformed_keys_are_invalid_without_touching_the_database(
    candidate, django_assert_num_queries
):
    with django_assert_num_queries(0):
        result = services.api_key_verify(key=candidate)
    assert result.code == Verification.INVALID
    assert result.key_id is None and result.status is None


def test_unknown_well_formed_key_is_invalid(db):
    result = services.api_key_verify(key=crypto.generate_key())
    assert result.code == Verification.INVALID
    assert result.key_id is None


def test_a_typo_in_a_real_key_is_invalid(issued_key):
    key = issued_key.plaintext
    typo = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert services.api_key_verify(key=typo).code == Verification.INVALID


def test_revoked_key_fails_with_revoked_and_is_not_counted(issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    result = services.api_key_verify(key=issued_key.plaintext)
    assert result.code == Verification.REVOKED
    assert result.key_id == issued_key.api_key.id and result.status == "revoked"
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 0


def test_expired_key_fails_with_expired(database_path, api, organization, actor):
    issued = services.api_key_issue(
        name="Soon",
        api=api,
        organization=organization,
        actor=actor,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert services.api_key_verify(key=issued.plaintext).is_valid
    ApiKey.objects.filter(pk=issued.api_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    result = services.api_key_verify(key=issued.plaintext)
    assert result.code == Verification.EXPIRED
    assert result.key_id == issued.api_key.id and result.status == "expired"
    assert ApiKey.objects.get(pk=issued.api_key.pk).effective_status == "expired"


def test_wrong_audience_fails_and_right_audience_passes(issued_key, api):
    other = ApiFactory(audience="https://billing.example.com")
    result = services.api_key_verify(key=issued_key.plaintext, audience=other.audience)
    assert result.code == Verification.WRONG_AUDIENCE
    assert result.key_id == issued_key.api_key.id and result.status == "active"
    nobody = services.api_key_verify(key=issued_key.plaintext, audience="https://no-such-api")
    assert nobody.code == Verification.WRONG_AUDIENCE
    assert services.api_key_verify(key=issued_key.plaintext, audience=api.audience).is_valid
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 1


def test_a_key_hashed_with_another_secret_does_not_verify(issued_key, settings):
    settings.APIKEYS = {
        **settings.APIKEYS,
        "HASHING_SECRET": "another-hashing-secret-of-32-chars!!",
    }
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.INVALID


def test_valid_verification_is_one_query(database_path, issued_key, django_assert_num_queries):
    from django.db import connection

    # One statement on PostgreSQL, which also counts the hour of usage history; SQLite has no
    # data-modifying CTE: the hour is a second statement in the same transaction (here a
    # savepoint inside the test's transaction: two statements more).
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 4):
        assert services.api_key_verify(key=issued_key.plaintext).is_valid


def test_failed_verification_is_at_most_two_queries_and_its_usage_hour(
    database_path, issued_key, actor, django_assert_max_num_queries
):
    from django.db import connection

    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    # The verify statement, the read that says why, and the refusal's hour of usage history
    # (SQLite: the verify statement's savepoint inside the test's transaction, two more).
    with django_assert_max_num_queries(3 if connection.vendor == "postgresql" else 5):
        assert services.api_key_verify(key=issued_key.plaintext).code == Verification.REVOKED


def test_bad_ip_is_dropped_not_stored(issued_key):
    services.api_key_verify(key=issued_key.plaintext, ip="not-an-ip")
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).last_verified_ip is None


# ------------------------------------------------------------------ rotate


def test_rotation_without_grace_replaces_the_secret_at_once(issued_key, actor):
    services.api_key_verify(key=issued_key.plaintext)
    rotated = services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    assert rotated.api_key.id == issued_key.api_key.id
    assert rotated.plaintext != issued_key.plaintext
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.INVALID
    result = services.api_key_verify(key=rotated.plaintext)
    assert result.is_valid
    assert result.key_id == issued_key.api_key.id
    assert result.scopes == ("read:users", "write:users")
    assert result.verification_count == 2  # counters are kept
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert key.rotated_on is not None
    assert key.key_prefix == rotated.plaintext[:12]


def test_rotation_with_grace_keeps_the_old_secret_for_the_grace_period(issued_key, actor):
    rotated = services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=60, actor=actor)
    assert services.api_key_verify(key=issued_key.plaintext).is_valid
    assert services.api_key_verify(key=rotated.plaintext).is_valid
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(
        previous_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.INVALID
    assert services.api_key_verify(key=rotated.plaintext).is_valid


def test_revoking_during_grace_ends_both_secrets(issued_key, actor):
    rotated = services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=600, actor=actor)
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    assert services.api_key_verify(key=issued_key.plaintext).code == Verification.INVALID
    assert services.api_key_verify(key=rotated.plaintext).code == Verification.REVOKED


def test_rotating_a_revoked_key_is_refused_and_changes_nothing(issued_key, actor):
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    before = ApiKey.objects.get(pk=issued_key.api_key.pk).digest
    events = AuditEvent.objects.count()
    with pytest.raises(exceptions.ApiKeyRevoked) as info:
        services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    assert info.value.code == "API_KEY_REVOKED"
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).digest == before
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("grace", [-1, 604801, 1.5, "60", True])
def test_bad_grace_periods_are_refused(issued_key, actor, grace):
    before = ApiKey.objects.get(pk=issued_key.api_key.pk).digest
    with pytest.raises(exceptions.ValidationFailed):
        services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=grace, actor=actor)
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).digest == before


# ------------------------------------------------------------------ revoke


def test_revoke_is_idempotent_and_audited_once(issued_key, actor):
    first = services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    revoked_on = first.revoked_on
    second = services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    assert second.status == ApiKey.Status.REVOKED
    assert second.revoked_on == revoked_on
    assert AuditEvent.objects.filter(action=AuditEvent.Action.API_KEY_REVOKED).count() == 1
    assert ApiKey.objects.filter(pk=issued_key.api_key.pk).exists()  # the row stays


# ------------------------------------------------------------------ audit


def test_issue_rotate_revoke_are_audited_with_actor_and_owner(api, organization):
    person = UserFactory(first_name="Grace", last_name="Hopper")
    actor = services.Actor(user=person, ip="198.51.100.7")
    issued = services.api_key_issue(name="Audited", api=api, organization=organization, actor=actor)
    services.api_key_rotate(api_key=issued.api_key, actor=actor)
    services.api_key_revoke(api_key=issued.api_key, actor=actor)
    events = list(AuditEvent.objects.filter(target_id=issued.api_key.id).order_by("id"))
    assert [e.action for e in events] == ["api_key.issued", "api_key.rotated", "api_key.revoked"]
    for event in events:
        assert event.actor_type == "user"
        assert event.actor_user == person
        assert event.actor_label == "Grace Hopper"
        assert event.org_code == organization.code
        assert event.ip == "198.51.100.7"
    assert issued.api_key.created_by == "Grace Hopper"


def test_audit_trail_is_append_only(issued_key):
    event = AuditEvent.objects.first()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(action="x")
    assert AuditEvent.objects.count() == 1


def test_failed_write_leaves_no_audit_event(api, organization, actor, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services.keys, "audit_event_record", broken)
    with pytest.raises(RuntimeError):
        services.api_key_issue(name="x", api=api, organization=organization, actor=actor)
    assert ApiKey.objects.count() == 0


# ------------------------------------------------------------------ commit durability


@pytest.mark.django_db(transaction=True)
def test_counts_commit_asynchronously_only_in_autocommit_and_only_on_postgresql(
    database_path, issued_key
):
    """The verify statement relaxes synchronous_commit for its own transaction on PostgreSQL;
    inside a caller's transaction it must not (that would relax the caller's writes too)."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as autocommit:
        assert services.api_key_verify(key=issued_key.plaintext).is_valid
    relaxed = "synchronous_commit" in autocommit.captured_queries[-1]["sql"]
    assert relaxed == (connection.vendor == "postgresql")
    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        assert services.api_key_verify(key=issued_key.plaintext).is_valid
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"
    # (On PostgreSQL the verify statement is a WITH … UPDATE that also counts the usage hour.)
    updates = [q["sql"] for q in inside.captured_queries if q["sql"].startswith(("UPDATE", "WITH"))]
    assert updates and all("synchronous_commit" not in sql for sql in updates)


@pytest.mark.django_db(transaction=True)
def test_a_count_is_visible_to_another_connection_as_soon_as_verify_returns(
    database_path, issued_key
):
    from django.db import connections

    for expected in (1, 2, 3):
        assert services.api_key_verify(key=issued_key.plaintext).verification_count == expected
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    f"SELECT verification_count FROM {ApiKey._meta.db_table} WHERE id = %s",
                    [issued_key.api_key.id],
                )
                assert cursor.fetchone()[0] == expected
        finally:
            other.close()
