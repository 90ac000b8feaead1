"""Bulk issuing (apikeys.bulk): real keys that verify like keys issued one at a time."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from apikeys import bulk, crypto, exceptions, services
from apikeys.models import ApiKey, AuditEvent
from tests.factories import ApiFactory, ScopeFactory

pytestmark = pytest.mark.django_db

HASHING_SECRET = "test-only-hashing-secret-not-for-production"


def test_bulk_keys_verify_with_their_owner_scopes_and_api(
    api, read_users, write_users, organization, user, actor
):
    made = bulk.api_key_bulk_issue(
        api=api,
        count=40,
        organizations=[organization],
        users=[user],
        scopes=["write:users", read_users],
        sample=40,
        batch_size=7,  # several batches, one of them short
        actor=actor,
    )
    assert made.count == 40 and len(made.sample) == 40
    assert ApiKey.objects.count() == 40
    owners = Counter()
    for sample in made.sample:
        result = services.api_key_verify(key=sample.plaintext, audience=api.audience, ip="10.0.0.1")
        assert result.code == services.Verification.VERIFIED
        assert result.key_id == sample.key_id
        assert result.scopes == ("read:users", "write:users")
        assert result.api_id == api.id and result.audience == api.audience
        assert result.verification_count == 1
        owners[(result.org_code, result.user_id)] += 1
    # Round robin over the owners.
    assert owners == {(organization.code, None): 20, (None, user.public_id): 20}


def test_bulk_rows_match_what_api_key_issue_writes(api, read_users, organization, user, actor):
    made = bulk.api_key_bulk_issue(
        api=api,
        count=6,
        organizations=[organization],
        users=[user],
        scopes=["read:users"],
        sample=6,
        actor=actor,
    )
    keys = {k.id: k for k in ApiKey.objects.all()}
    assert len(keys) == 6
    for sample in made.sample:
        key = keys[sample.key_id]
        assert key.digest == crypto.digest(sample.plaintext, HASHING_SECRET)
        assert key.key_prefix == sample.plaintext[:12] and key.key_suffix == sample.plaintext[-4:]
        assert key.api_id == api.pk and key.api_public_id == api.id and key.audience == api.audience
        assert key.scope_list == ["read:users"]
        assert list(key.scopes.values_list("key", flat=True)) == ["read:users"]
        assert key.status == ApiKey.Status.ACTIVE and key.verification_count == 0
        assert key.previous_digest is None and key.last_verified_on is None
        assert key.created_by == "system"
        if key.organization_id:
            assert (key.org_code, key.user_public_id, key.type) == (
                organization.code,
                "",
                "organization",
            )
        else:
            assert (key.org_code, key.user_public_id, key.type) == ("", user.public_id, "user")
    # Ids are time-ordered like every key id: the batch reads newest first by id.
    assert made.first_id == min(keys) and made.last_id == max(keys)


def test_bulk_keys_rotate_and_revoke_like_any_key(api, organization, actor):
    made = bulk.api_key_bulk_issue(
        api=api, count=2, organizations=[organization], sample=2, actor=actor
    )
    first, second = made.sample
    rotated = services.api_key_rotate(api_key=ApiKey.objects.get(pk=first.key_id), actor=actor)
    assert services.api_key_verify(key=first.plaintext).code == services.Verification.INVALID
    assert services.api_key_verify(key=rotated.plaintext).key_id == first.key_id
    services.api_key_revoke(api_key=ApiKey.objects.get(pk=second.key_id), actor=actor)
    assert services.api_key_verify(key=second.plaintext).code == services.Verification.REVOKED


def test_no_bulk_plaintext_reaches_the_database(api, organization, actor):
    made = bulk.api_key_bulk_issue(
        api=api, count=5, organizations=[organization], sample=5, actor=actor
    )
    fragments = [s.plaintext[12:-4] for s in made.sample]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(str(v) for v in row)
                assert not any(f in text for f in fragments), f"secret found in {table}"
    assert all(s.plaintext not in repr(s) for s in made.sample)
    assert all(s.plaintext not in repr(made) for s in made.sample)


def test_a_batch_records_one_audit_event(api, organization, actor):
    made = bulk.api_key_bulk_issue(api=api, count=25, organizations=[organization], actor=actor)
    (event,) = AuditEvent.objects.all()
    assert event.action == AuditEvent.Action.API_KEY_ISSUED
    assert event.target_type == "api_key_batch"
    assert event.details["count"] == 25
    assert (event.details["first_id"], event.details["last_id"]) == (made.first_id, made.last_id)
    assert made.sample == ()


def test_sample_is_spread_over_the_batch(api, organization, actor):
    made = bulk.api_key_bulk_issue(
        api=api, count=100, organizations=[organization], sample=4, actor=actor
    )
    ids = list(ApiKey.objects.order_by("id").values_list("id", flat=True))
    positions = [ids.index(s.key_id) for s in made.sample]
    assert positions == [0, 25, 50, 75]


def test_bad_arguments_are_refused_and_write_nothing(api, organization, actor):
    other_scope = ScopeFactory(api=ApiFactory(), key="read:other")
    with pytest.raises(ValueError):
        bulk.api_key_bulk_issue(api=api, count=3, actor=actor)  # no owner
    with pytest.raises(ValueError):
        bulk.api_key_bulk_issue(api=api, count=-1, organizations=[organization], actor=actor)
    with pytest.raises(exceptions.ScopeNotFound):
        bulk.api_key_bulk_issue(
            api=api, count=3, organizations=[organization], scopes=[other_scope], actor=actor
        )
    assert ApiKey.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_random_key_bodies_are_well_formed_unique_and_use_the_whole_alphabet():
    bodies = bulk.random_key_bodies(5000)
    assert len(bodies) == 5000 and len(set(bodies)) == 5000
    assert all(len(b) == crypto.RANDOM_LENGTH for b in bodies)
    seen = Counter("".join(bodies))
    assert set(seen) == set(crypto.ALPHABET)
    # 200,000 characters over 62 symbols: about 3,226 each (standard deviation about 57).
    # The classic mistake, byte % 62 over all 256 byte values, gives the first 8 symbols
    # 5/256 each instead of 4/256: a quarter more. Uniform, their mean stays within 2%.
    first = sum(seen[c] for c in crypto.ALPHABET[:8]) / 8
    rest = sum(seen[c] for c in crypto.ALPHABET[8:]) / (len(crypto.ALPHABET) - 8)
    assert 0.95 < first / rest < 1.05
    assert max(seen.values()) < 1.3 * min(seen.values())
    for body in bodies[:50]:
        key = crypto.KEY_PREFIX + body + crypto.checksum(crypto.KEY_PREFIX + body)
        assert crypto.is_well_formed(key)


def test_batch_key_ids_are_increasing_uuid7_stamped_now_not_in_the_future():
    import time
    import uuid

    before = time.time_ns() // 1_000_000
    ids = bulk.batch_key_ids(20_000)
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == 20_000
    for key_id in (ids[0], ids[-1]):
        assert key_id.startswith("api_key_") and len(key_id) == 40
        parsed = uuid.UUID(key_id.removeprefix("api_key_"))
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after
    # The counter carries into the timestamp only past 2**26 ids.
    wide = bulk.batch_key_ids(2, start_ms=1_000)
    assert {uuid.UUID(i.removeprefix("api_key_")).int >> 80 for i in wide} == {1_000}
