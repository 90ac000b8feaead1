"""Usage limits and usage history on the Redis path (apikeys.keycache), on a Redis of this
module's own: credits kept in Redis and written back, the database path of a pending key
sharing Redis's limits, usage hours written back once and read exactly meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from apikeys import keycache, selectors, services
from apikeys.models import ApiKey, ApiKeyUsage


@pytest.fixture
def fast(key_cache: redis.Redis) -> redis.Redis:
    """The key cache in use, on a Redis of this module's own (tests/conftest.py)."""
    return key_cache


@pytest.fixture
def limited_key(api, organization, actor) -> services.IssuedKey:
    return services.api_key_issue(
        name="Limited",
        api=api,
        organization=organization,
        credits={"remaining": 5},
        ratelimit={"limit": 100, "duration": 3600},
        actor=actor,
    )


def today_usage(api_key: ApiKey) -> dict[str, int]:
    today = datetime.now(UTC).date()
    buckets = selectors.api_key_usage(api_key=api_key, start=today, end=today, granularity="day")
    return {o: buckets[0][o] for o in ApiKeyUsage.OUTCOMES}


def test_credits_live_in_redis_and_are_written_back(fast, limited_key) -> None:
    key = limited_key.api_key
    for left in (4, 3):
        assert services.api_key_verify(key=limited_key.plaintext).credits_remaining == left
    # The row still says 5; a read says 3 (Redis's value); the write-back makes the row say 3.
    assert ApiKey.objects.values_list("credits_remaining", flat=True).get(pk=key.pk) == 5
    assert ApiKey.objects.get(pk=key.pk).credits_remaining == 3
    keycache.write_back_now()
    assert ApiKey.objects.values_list("credits_remaining", flat=True).get(pk=key.pk) == 3


def test_a_pending_key_on_the_database_path_uses_the_credits_in_redis(fast, limited_key) -> None:
    key = limited_key.api_key
    assert services.api_key_verify(key=limited_key.plaintext).credits_remaining == 4
    prefix = keycache._state().prefix
    fast.incr(prefix + "v:" + key.pk)
    fast.set(prefix + "p:" + key.pk, "1", px=60_000)
    # The database path (the key is pending), sharing Redis's credits: 3, not the row's 4.
    assert services.api_key_verify(key=limited_key.plaintext).credits_remaining == 3
    fast.delete(prefix + "p:" + key.pk)
    assert services.api_key_verify(key=limited_key.plaintext).credits_remaining == 2
    keycache.write_back_now()
    row = ApiKey.objects.get(pk=key.pk)
    assert row.credits_remaining == 2 and row.verification_count == 3


def test_a_patch_replaces_the_credits_held_in_redis(fast, limited_key, actor) -> None:
    key = limited_key.api_key
    services.api_key_verify(key=limited_key.plaintext)
    services.api_key_update(api_key=key, credits={"remaining": 10}, actor=actor)
    assert services.api_key_verify(key=limited_key.plaintext).credits_remaining == 9
    # The generation written before the change carried the old credits: not written over.
    keycache.write_back_now()
    assert ApiKey.objects.get(pk=key.pk).credits_remaining == 9


def test_usage_is_exact_before_and_after_the_write_back(fast, limited_key, actor) -> None:
    key = limited_key.api_key
    for _ in range(7):  # 5 valid, then 2 refused for credits
        services.api_key_verify(key=limited_key.plaintext)
    services.api_key_verify(key=limited_key.plaintext, audience="https://elsewhere")
    expected = {
        "verified": 5,
        "rate_limited": 0,
        "usage_exceeded": 2,
        "revoked": 0,
        "expired": 0,
        "wrong_audience": 1,
    }
    assert today_usage(key) == expected
    keycache.write_back_now()
    assert today_usage(key) == expected
    # The open hour is written on the key's row (one row written per key), its ApiKeyUsage
    # row holds zeros until a later hour opens.
    row = ApiKey.objects.get(pk=key.pk)
    assert (row.usage_hour_verified, row.usage_hour_usage_exceeded) == (5, 2)
    assert ApiKeyUsage.objects.get(api_key=key, start=row.usage_hour).verified == 0
    # A second write-back adds nothing; a revoked key's refusals are counted too.
    keycache.write_back_now()
    services.api_key_revoke(api_key=key, actor=actor)
    services.api_key_verify(key=limited_key.plaintext)
    keycache.write_back_now()
    assert today_usage(key) == {**expected, "revoked": 1}
    assert ApiKey.objects.get(pk=key.pk).verification_count == 5


def test_the_selector_counts_a_generation_once_while_it_is_written_back(
    fast, limited_key, monkeypatch
) -> None:
    """A write-back that commits between the selector's Redis read and its table read: the
    generation is in both, and counted once (the row's generation says it is written)."""
    key = limited_key.api_key
    services.api_key_verify(key=limited_key.plaintext)
    real = keycache.unwritten_usage

    def then_write_back(key_id: str, generation: int = -1) -> Any:
        found = real(key_id, generation)
        # What the write-back does, without letting it drop the generation from Redis yet.
        state = keycache._state()
        gens = state.seal_script(keys=[state.k_gen, state.k_first])
        from django.db import transaction

        for gen in gens:
            fields = {
                k.decode(): v.decode()
                for k, v in state.client.hgetall(state.prefix + "c:" + str(gen)).items()
            }
            with transaction.atomic():
                keycache._write_rows(
                    int(gen), [(key_id, int(fields.get(key_id, "0")), 0, "")], [], fields
                )
        return found

    monkeypatch.setattr(keycache, "unwritten_usage", then_write_back)
    assert today_usage(key)["verified"] == 1


def test_the_charts_daily_usage_is_exact_before_during_and_after_the_write_back(
    fast, limited_key, api, organization, actor, monkeypatch
) -> None:
    """The portal's and the admin's charts read a page of keys at once: counts still in
    Redis count, and a generation being written back is counted once."""
    key = limited_key.api_key
    other = services.api_key_issue(
        name="Other", api=api, scopes=[], organization=organization, actor=actor
    )
    for _ in range(7):  # 5 valid, then 2 refused for credits
        services.api_key_verify(key=limited_key.plaintext)
    services.api_key_verify(key=other.plaintext)

    def today(series: Any) -> tuple[int, int]:
        last = series.days[-1]
        return last.valid, last.refused

    def charts() -> dict[str, tuple[int, int]]:
        found = selectors.api_key_usage_daily(api_key_ids=[key.pk, other.api_key.pk])
        return {key_id: today(series) for key_id, series in found.items()}

    expected = {key.pk: (5, 2), other.api_key.pk: (1, 0)}
    assert charts() == expected  # all in Redis
    real = keycache.unwritten_usage_many

    def write_back_in_between(key_ids: Any, generation: int = -1) -> Any:
        read = real(key_ids, generation)
        keycache.write_back_now()  # commits after Redis was read, before the table is
        return read

    monkeypatch.setattr(keycache, "unwritten_usage_many", write_back_in_between)
    assert charts() == expected
    monkeypatch.undo()
    assert charts() == expected  # all in the table
