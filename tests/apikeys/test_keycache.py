"""apikeys.keycache on a Redis of its own: entries, versions, epoch, counts, write-back."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.db.models import F
from django.utils import timezone

from apikeys import conf, crypto, keycache, selectors, services
from apikeys.models import ApiKey, ApiKeyUsage


@pytest.fixture
def fast(key_cache: redis.Redis) -> redis.Redis:
    """The key cache in use, on a Redis of this module's own (tests/conftest.py)."""
    return key_cache


def digest_of(issued: services.IssuedKey) -> str:
    return crypto.digest(issued.plaintext, conf.get("HASHING_SECRET"))


def test_without_redis_keycache_steps_aside(issued_key, settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert keycache.verify(digest_of(issued_key), None, None, timezone.now()) is None
    keycache.invalidate([issued_key.api_key.id])  # nothing to do, no error
    assert keycache.write_back() == 0
    assert keycache.write_back_now() == 0
    assert keycache.new_epoch() is False
    assert keycache.live_count("x", 7, 0) == 7


def test_known_key_verifies_without_a_database_round_trip(
    fast, issued_key, django_assert_num_queries
) -> None:
    digest = digest_of(issued_key)
    entry, total = keycache.verify(digest, None, "10.0.0.1", timezone.now())
    assert (entry.key_id, total) == (issued_key.api_key.id, 1)
    with django_assert_num_queries(0):
        entry, total = keycache.verify(digest, None, "10.0.0.2", timezone.now())
    assert total == 2
    assert entry.scopes == ("read:users", "write:users")


def test_unknown_digest_is_left_to_the_database(fast, db) -> None:
    assert keycache.verify("0" * 64, None, None, timezone.now()) is None


def test_counts_are_exact_before_and_after_write_back(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        keycache.verify(digest, None, ip, timezone.now())
    stored = ApiKey.objects.filter(pk=issued_key.api_key.pk).values_list(
        "verification_count", flat=True
    )
    assert stored.get() == 0
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert (key.verification_count, key.last_verified_ip) == (3, "10.0.0.3")
    assert keycache.write_back() == 1
    assert stored.get() == 3
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 3
    assert keycache.write_back() == 0
    _, total = keycache.verify(digest, None, None, timezone.now())
    assert total == 4
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 4


def test_revoked_key_is_refused_at_once_and_for_good(
    fast, issued_key, actor, django_capture_on_commit_callbacks
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    # Before the commit: pending, so the database decides.
    assert keycache.verify(digest, None, None, timezone.now()) is None
    for callback in callbacks:
        callback()
    entry, total = keycache.verify(digest, None, None, timezone.now())
    assert (entry.status, total) == ("revoked", None)
    assert keycache.outcome(entry, None, timezone.now()) == "API_KEY_REVOKED"


def test_an_entry_of_another_worker_version_is_read_again(fast, issued_key) -> None:
    """Another process changed the key: only its version in Redis tells this one."""
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(status=ApiKey.Status.REVOKED)
    fast.incr(keycache._state().prefix + "v:" + issued_key.api_key.id)
    entry, total = keycache.verify(digest, None, None, timezone.now())
    assert (entry.status, total) == ("revoked", None)


def test_a_redis_that_lost_its_memory_trusts_no_entry(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(status=ApiKey.Status.REVOKED)
    fast.flushdb()
    entry, total = keycache.verify(digest, None, None, timezone.now())
    assert (entry.status, total) == ("revoked", None)


def test_generations_after_a_lost_memory_are_new_to_every_row(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    keycache.write_back()
    fast.flushdb()
    keycache.verify(digest, None, None, timezone.now())
    assert keycache.write_back() == 1
    assert ApiKey.objects.values_list("verification_count", flat=True).get() == 2


@pytest.mark.parametrize(
    ("change", "audience", "code"),
    [
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, None, "API_KEY_EXPIRED"),
        ({}, "https://other.example.com", "API_KEY_WRONG_AUDIENCE"),
    ],
)
def test_failures_are_told_from_the_entry_and_not_counted(
    fast, issued_key, change, audience, code
) -> None:
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(**change)
    entry, total = keycache.verify(digest_of(issued_key), audience, None, timezone.now())
    assert (keycache.outcome(entry, audience, timezone.now()), total) == (code, None)
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 0


def test_previous_secret_verifies_in_its_grace_period_only(
    fast, issued_key, actor, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        rotated = services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=60, actor=actor)
    old, new = digest_of(issued_key), digest_of(rotated)
    entry, total = keycache.verify(old, None, None, timezone.now())
    assert total == 1
    assert keycache.outcome(entry, None, timezone.now() + timedelta(seconds=61)) == (
        "API_KEY_INVALID"
    )
    assert keycache.verify(new, None, None, timezone.now())[1] == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    # The replaced secret is no key at all any more, for good: known as such without asking
    # the database again.
    entry, total = keycache.verify(new, None, None, timezone.now())
    assert (entry.status, total) == ("invalid", None)
    assert services.api_key_verify(key=rotated.plaintext).code == "API_KEY_INVALID"


def test_write_back_that_died_after_the_database_is_not_counted_twice(
    fast, issued_key, monkeypatch
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()

    def die(**kwargs: Any) -> None:
        raise redis.ConnectionError("killed")

    monkeypatch.setattr(state, "finish_script", die)
    with pytest.raises(redis.ConnectionError):
        keycache.write_back()
    stored = ApiKey.objects.filter(pk=issued_key.api_key.pk).values_list(
        "verification_count", flat=True
    )
    assert stored.get() == 2
    # Read meanwhile: the row has the generation, Redis still has it too: counted once.
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 2
    monkeypatch.undo()
    keycache.write_back()
    assert stored.get() == 2
    assert keycache.verify(digest, None, None, timezone.now())[1] == 3


def test_counts_of_a_row_not_visible_yet_wait_for_the_next_write_back(
    fast, issued_key, monkeypatch
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, "10.0.0.9", timezone.now())
    monkeypatch.setattr(keycache, "_apply", lambda *args: [])
    assert keycache.write_back() == 0
    monkeypatch.undo()
    assert keycache.write_back() == 1
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert (key.verification_count, key.last_verified_ip) == (1, "10.0.0.9")


def test_the_open_hour_is_written_on_the_key_row_and_closed_into_the_usage_table(
    fast, issued_key, django_assert_num_queries
) -> None:
    """A write-back writes one row per key (its counts and its open hour of usage); an
    hour's ApiKeyUsage row is written when it opens (zeros) and when a later one does."""
    key = issued_key.api_key
    digest = digest_of(issued_key)
    ten = datetime(2026, 11, 30, 10, tzinfo=UTC)
    eleven = ten + timedelta(hours=1)
    for minute in (10, 20):
        keycache.verify(digest, None, None, ten + timedelta(minutes=minute))
    keycache.write_back()
    row = ApiKey.objects.get(pk=key.pk)
    assert (row.usage_hour, row.usage_hour_verified) == (ten, 2)
    assert ApiKeyUsage.objects.get(api_key=key, start=ten).verified == 0
    # The same hour again: the key's row only, nothing in the usage table.
    keycache.verify(digest, None, None, ten + timedelta(minutes=30))
    before = list(ApiKeyUsage.objects.values_list("start", "verified"))
    keycache.write_back()
    assert list(ApiKeyUsage.objects.values_list("start", "verified")) == before
    assert ApiKey.objects.get(pk=key.pk).usage_hour_verified == 3
    # A later hour, with a worker whose clock is still in the last one: the hours alternate
    # in one generation, and each is counted once.
    for when in (eleven + timedelta(minutes=1), eleven - timedelta(minutes=1), eleven):
        keycache.verify(digest, None, None, when)

    def by_hour() -> dict[datetime, int]:
        hours = selectors.api_key_usage(
            api_key=key, start=ten.date(), end=ten.date(), granularity="hour"
        )
        return {b["start"]: b["verified"] for b in hours if b["verified"]}

    assert by_hour() == {ten: 4, eleven: 2}  # the open hour on the row, the rest in Redis
    keycache.write_back()
    row = ApiKey.objects.get(pk=key.pk)
    assert (row.usage_hour, row.usage_hour_verified, row.verification_count) == (eleven, 2, 6)
    stored = dict(ApiKeyUsage.objects.filter(api_key=key).values_list("start", "verified"))
    assert stored == {ten: 4, eleven: 0}
    assert by_hour() == {ten: 4, eleven: 2}
    daily = selectors.api_key_usage_daily(api_key_ids=[key.pk], today=ten.date())[key.pk]
    assert daily.days[-1].valid == 6
    # Refusals are counted in the open hour too (a generation of refusals only); a
    # write-back of nothing new writes nothing.
    keycache.verify(digest, "https://elsewhere", None, eleven + timedelta(minutes=5))
    keycache.write_back()
    row = ApiKey.objects.get(pk=key.pk)
    assert (row.usage_hour_wrong_audience, row.verification_count) == (1, 6)
    with django_assert_num_queries(0):
        assert keycache.write_back() == 0


def test_redis_down_means_the_database_path_then_a_new_epoch(
    fast, issued_key, redis_server, monkeypatch
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()
    epoch = fast.get(state.k_epoch)

    def down(**kwargs: Any) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(state, "verify_script", down)
    assert keycache.verify(digest, None, None, timezone.now()) is None
    monkeypatch.undo()
    # In its back-off: the database path, without trying Redis.
    assert keycache.verify(digest, None, None, timezone.now()) is None
    state.down_until = 0
    assert keycache.verify(digest, None, None, timezone.now())[1] == 2
    assert fast.get(state.k_epoch) != epoch


def test_a_failed_mark_makes_the_writer_replace_the_epoch(
    fast, issued_key, actor, monkeypatch
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()
    epoch = fast.get(state.k_epoch)

    def down(**kwargs: Any) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(state, "bump_script", down)
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    monkeypatch.undo()
    state.down_until = 0
    entry, total = keycache.verify(digest, None, None, timezone.now())
    assert (entry.status, total) == ("revoked", None)
    assert fast.get(state.k_epoch) != epoch


def test_failing_redis_on_read_or_epoch_leaves_stored_counts(fast, issued_key, monkeypatch) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()

    def down(**kwargs: Any) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(state, "read_script", down)
    assert ApiKey.objects.get(pk=issued_key.api_key.pk).verification_count == 0
    monkeypatch.setattr(state, "start_epoch_script", down)
    state.down_until = 0
    assert keycache.verify(digest, None, None, timezone.now()) is None


def test_write_back_runs_once_per_interval_across_workers(fast, issued_key) -> None:
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    state = keycache._state()
    assert keycache.write_back_if_due(state, 60) is True
    assert keycache.write_back_if_due(state, 60) is False
    assert 0 < fast.pttl(state.k_lock) <= 60_000
    assert ApiKey.objects.values_list("verification_count", flat=True).get() == 1


def test_the_cache_starts_again_when_full(fast, issued_key, monkeypatch) -> None:
    monkeypatch.setattr(keycache, "MAX_ENTRIES", 1)
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    keycache._state().entries["x"] = keycache._state().entries[digest_of(issued_key)]
    keycache._state().entries.pop(digest_of(issued_key))
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    assert list(keycache._state().entries) == [digest_of(issued_key)]


def test_writer_thread_starts_once_when_asked(fast, issued_key, settings, monkeypatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(keycache.threading.Thread, "start", lambda self: started.append(self))
    settings.APIKEYS = {**settings.APIKEYS, "COUNTS_WRITE_BACK_THREAD": True}
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    keycache.start_writer()
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    assert len(started) == 1


def test_write_back_command(fast, issued_key) -> None:
    from io import StringIO

    from django.core.management import call_command

    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    out = StringIO()
    call_command("apikeys_write_back", stdout=out)
    assert "1 key" in out.getvalue()


def test_a_key_read_again_after_a_change_costs_one_database_read(
    fast, issued_key, django_assert_num_queries
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    fast.incr(keycache._state().prefix + "v:" + issued_key.api_key.id)  # changed elsewhere
    with django_assert_num_queries(1):
        _, total = keycache.verify(digest, None, None, timezone.now())
    assert total == 2


def test_a_key_being_written_elsewhere_is_left_to_the_database(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    prefix = keycache._state().prefix
    fast.incr(prefix + "v:" + issued_key.api_key.id)
    fast.set(prefix + "p:" + issued_key.api_key.id, "1", px=60_000)
    assert keycache.verify(digest, None, None, timezone.now()) is None
    # Not cached meanwhile: once the write is done, the row is read again.
    fast.delete(prefix + "p:" + issued_key.api_key.id)
    assert keycache.verify(digest, None, None, timezone.now())[1] == 2


def test_a_key_that_keeps_changing_during_one_verification_is_left_to_the_database(
    fast, issued_key, monkeypatch
) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()
    calls: list[Any] = []

    def always_stale(**kwargs: Any) -> list[Any]:
        calls.append(kwargs)
        return [b"1", b"epoch", b"99", b"0"]

    monkeypatch.setattr(state, "verify_script", always_stale)
    assert keycache.verify(digest, None, None, timezone.now()) is None
    assert len(calls) == 3


def test_a_key_gone_from_the_database_is_left_to_the_database(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    fast.incr(keycache._state().prefix + "v:" + issued_key.api_key.id)
    ApiKey.objects.filter(pk=issued_key.api_key.pk).delete()
    assert keycache.verify(digest, None, None, timezone.now()) is None


@pytest.mark.django_db(transaction=True)
def test_a_change_outside_a_transaction_is_marked_at_once(
    fast, api, read_users, write_users, organization, actor
) -> None:
    issued = services.api_key_issue(name="Outside", api=api, organization=organization, actor=actor)
    key_id = issued.api_key.id
    prefix = keycache._state().prefix
    keycache.invalidate([key_id])
    assert fast.get(prefix + "v:" + key_id) == b"2"
    assert not fast.exists(prefix + "p:" + key_id)
    keycache._process = None


@pytest.mark.parametrize(
    ("change", "audience", "code", "status"),
    [
        ({"status": ApiKey.Status.REVOKED}, None, "API_KEY_REVOKED", "revoked"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, None, "API_KEY_EXPIRED", "expired"),
        ({}, "https://other.example.com", "API_KEY_WRONG_AUDIENCE", "active"),
    ],
)
def test_api_key_verify_tells_failures_from_the_cache_as_the_database_would(
    fast, issued_key, django_assert_num_queries, change, audience, code, status
) -> None:
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(**change)
    services.api_key_verify(key=issued_key.plaintext, audience=audience)  # fills the cache
    with django_assert_num_queries(0):
        cached = services.api_key_verify(key=issued_key.plaintext, audience=audience)
    assert (cached.code, cached.status, cached.key_id) == (code, status, issued_key.api_key.id)


def test_api_key_verify_answers_an_expired_grace_secret_invalid_from_the_cache(
    fast, issued_key, actor, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_rotate(api_key=issued_key.api_key, grace_seconds=60, actor=actor)
    assert services.api_key_verify(key=issued_key.plaintext).is_valid
    later = timezone.now() + timedelta(seconds=61)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert services.api_key_verify(key=issued_key.plaintext).code == "API_KEY_INVALID"


def test_writer_tick_replaces_the_epoch_owed_then_writes_back(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    state = keycache._state()
    epoch = fast.get(state.k_epoch)
    state.owe_new_epoch = True
    state.down_until = float("inf")
    keycache.writer_tick(state)
    assert fast.get(state.k_epoch) != epoch
    assert (state.owe_new_epoch, state.down_until) == (False, 0.0)
    assert ApiKey.objects.values_list("verification_count", flat=True).get() == 1


def test_writer_tick_logs_a_failure_and_carries_on(fast, issued_key, monkeypatch, caplog) -> None:
    state = keycache._state()

    def down(**kwargs: Any) -> None:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(state, "seal_script", down)
    keycache.writer_tick(state)
    assert "Writing verification counts back failed" in caplog.text


def test_writer_loop_writes_back_every_interval_until_stopped(
    fast, issued_key, settings, monkeypatch
) -> None:
    settings.APIKEYS = {**settings.APIKEYS, "COUNTS_WRITE_BACK_INTERVAL": 0.05}
    state = keycache._state()
    ticks: list[int] = []

    def tick(s: Any) -> None:
        ticks.append(1)
        if len(ticks) == 3:
            s.stop_writer.set()

    monkeypatch.setattr(keycache, "writer_tick", tick)
    # In a thread of its own, as in a worker (it closes that thread's connections).
    loop = threading.Thread(target=keycache._writer_loop, args=(state,))
    loop.start()
    loop.join(timeout=60)
    assert not loop.is_alive()
    assert len(ticks) == 3


def test_write_back_now_waits_for_the_workers_lock(fast, issued_key, caplog) -> None:
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    state = keycache._state()
    fast.set(state.k_lock, "another worker", px=200)
    assert keycache.write_back_now(wait=30) == 1
    assert not fast.exists(state.k_lock)  # released
    # A lock that stays taken: written back beside it, each count once.
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    fast.set(state.k_lock, "a busy worker", px=60_000)
    assert keycache.write_back_now(wait=0.1) == 1
    assert "stayed taken" in caplog.text
    assert fast.get(state.k_lock) == b"a busy worker"
    assert ApiKey.objects.values_list("verification_count", flat=True).get() == 2


def test_the_writer_is_started_once_even_when_two_threads_race(fast, settings) -> None:
    settings.APIKEYS = {**settings.APIKEYS, "COUNTS_WRITE_BACK_THREAD": True}
    state = keycache._state()
    with state.lock:  # the other thread passed the first check and waits here
        racer = threading.Thread(target=keycache.start_writer)
        racer.start()
        sentinel = threading.Thread(target=lambda: None)
        state.writer = sentinel
    racer.join(timeout=30)
    assert state.writer is sentinel


def test_redis_url_of_a_list_location(settings) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"],
        }
    }
    assert keycache.redis_url() == "redis://127.0.0.1:1/0"


def test_raw_sql_times_are_read_as_utc() -> None:
    from datetime import UTC, datetime

    expected = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert keycache.aware_datetime("2026-01-02 03:04:05") == expected
    assert keycache.aware_datetime(None) is None
    assert keycache.aware_datetime(expected) == expected


def test_a_change_drops_only_the_changed_keys_entries(fast, issued_key, api, actor) -> None:
    other = services.api_key_issue(
        name="Other", api=api, organization=issued_key.api_key.organization, actor=actor
    )
    for issued in (issued_key, other):
        keycache.verify(digest_of(issued), None, None, timezone.now())
    keycache.invalidate([issued_key.api_key.id])
    assert list(keycache._state().entries) == [digest_of(other)]
    # Read together: one of them has no counts in Redis, the other one has.
    keycache.write_back()
    keycache.verify(digest_of(other), None, "10.0.0.4", timezone.now())
    counts = {key.id: key.verification_count for key in ApiKey.objects.all()}
    assert counts == {issued_key.api_key.id: 1, other.api_key.id: 2}
    # Without its IP column: the time is merged, the IP left deferred.
    partial = ApiKey.objects.only("id", "verification_count", "last_verified_on").get(
        pk=other.api_key.pk
    )
    assert partial.last_verified_on is not None
    assert "last_verified_ip" not in partial.__dict__


def test_a_newer_stored_time_is_kept_when_counts_are_merged(fast, issued_key) -> None:
    keycache.verify(digest_of(issued_key), None, "10.0.0.1", timezone.now())
    later = timezone.now() + timedelta(hours=1)
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(
        last_verified_on=later, last_verified_ip="10.9.9.9"
    )
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert (key.verification_count, key.last_verified_on, key.last_verified_ip) == (
        1,
        later,
        "10.9.9.9",
    )


@pytest.mark.parametrize(
    ("change", "audience", "code"),
    [
        ({}, "https://users.example.com", "API_KEY_VERIFIED"),
        ({"digest": "0" * 64}, None, "API_KEY_INVALID"),
        (
            {  # rotated, and its grace period is over
                "previous_digest": F("digest"),
                "digest": "0" * 64,
                "previous_expires_at": timezone.now() - timedelta(seconds=1),
            },
            None,
            "API_KEY_INVALID",
        ),
        ({"status": ApiKey.Status.REVOKED}, None, "API_KEY_REVOKED"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, None, "API_KEY_EXPIRED"),
        ({}, "https://other.example.com", "API_KEY_WRONG_AUDIENCE"),
    ],
)
def test_while_redis_fails_the_database_path_answers(
    fast, issued_key, change, audience, code
) -> None:
    keycache._state().down_until = float("inf")  # in its back-off after a Redis error
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(**change)
    verification = services.api_key_verify(key=issued_key.plaintext, audience=audience)
    assert verification.code == code
    stored = ApiKey.objects.filter(pk=issued_key.api_key.pk).values_list("verification_count")
    assert stored.get() == ((1,) if code == "API_KEY_VERIFIED" else (0,))


def test_the_database_path_refuses_when_the_constant_time_check_disagrees(
    fast, issued_key, monkeypatch
) -> None:
    from apikeys.services import verification

    keycache._state().down_until = float("inf")
    monkeypatch.setattr(verification.crypto, "constant_time_equals", lambda a, b: False)
    assert services.api_key_verify(key=issued_key.plaintext).code == "API_KEY_INVALID"
    assert services.api_key_verify(key="not a key").code == "API_KEY_INVALID"


def test_the_database_path_refuses_a_key_that_changed_between_its_statements(
    fast, issued_key, monkeypatch
) -> None:
    """The counting statement found no valid key, the explaining one finds nothing wrong:
    the key changed in between. Refused."""
    from apikeys.services import verification

    keycache._state().down_until = float("inf")
    monkeypatch.setattr(verification, "_count_valid_verification", lambda *args: None)
    assert services.api_key_verify(key=issued_key.plaintext).code == "API_KEY_INVALID"


def test_without_server_side_binding_the_usual_cursor_serves(db, monkeypatch) -> None:
    """psycopg2 has no ServerBindingCursor: the verify statement takes Django's cursor."""
    from django.db import connection
    from django.db.backends.postgresql import base

    from apikeys.services import verification

    monkeypatch.delattr(base, "ServerBindingCursor", raising=False)
    with verification._verify_cursor(connection) as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_redis_that_forgot_its_scripts_is_sent_them_again(fast, issued_key) -> None:
    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    fast.script_flush()
    assert keycache.verify(digest, None, None, timezone.now())[1] == 2


def test_write_back_command_can_make_every_worker_read_every_key_again(fast, issued_key) -> None:
    from io import StringIO

    from django.core.management import call_command

    digest = digest_of(issued_key)
    keycache.verify(digest, None, None, timezone.now())
    epoch = fast.get(keycache._state().k_epoch)
    ApiKey.objects.filter(pk=issued_key.api_key.pk).update(status=ApiKey.Status.REVOKED)
    out = StringIO()
    call_command("apikeys_write_back", "--new-epoch", stdout=out)
    assert "Replaced the epoch" in out.getvalue()
    assert fast.get(keycache._state().k_epoch) != epoch
    entry, total = keycache.verify(digest, None, None, timezone.now())
    assert (entry.status, total) == ("revoked", None)


def test_a_new_epoch_reads_the_rows_only_when_redis_lost_its_generations(
    fast, issued_key, django_assert_num_queries
) -> None:
    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    state = keycache._state()
    with django_assert_num_queries(0):
        assert keycache.new_epoch()
    fast.flushdb()
    with django_assert_num_queries(1):
        assert keycache.new_epoch()
    assert int(fast.get(state.k_gen)) >= 1
