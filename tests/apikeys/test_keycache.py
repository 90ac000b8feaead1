"""apikeys.keycache on a Redis of its own: entries, versions, epoch, counts, write-back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone

from apikeys import conf, crypto, keycache, services
from apikeys.models import ApiKey
from tests.servers import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fast(redis_server: RedisServer, settings: Any) -> Iterator[redis.Redis]:
    """The default cache is this Redis (emptied), so keycache is in use."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url(0),
        }
    }
    client = redis.Redis.from_url(redis_server.url(0))
    client.flushdb()
    keycache._process = None
    yield client
    keycache._process = None


def digest_of(issued: services.IssuedKey) -> str:
    return crypto.digest(issued.plaintext, conf.get("HASHING_SECRET"))


def test_without_redis_keycache_steps_aside(issued_key, settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert keycache.verify(digest_of(issued_key), None, None, timezone.now()) is None
    keycache.invalidate([issued_key.api_key.id])  # nothing to do, no error
    assert keycache.write_back() == 0


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
    # The replaced secret is no key at all any more: the database says so.
    assert keycache.verify(new, None, None, timezone.now()) is None
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
    monkeypatch.setattr(keycache, "_apply", lambda gen, updates: [])
    assert keycache.write_back() == 0
    monkeypatch.undo()
    assert keycache.write_back() == 1
    key = ApiKey.objects.get(pk=issued_key.api_key.pk)
    assert (key.verification_count, key.last_verified_ip) == (1, "10.0.0.9")


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
    assert len(started) == 1


def test_write_back_command(fast, issued_key) -> None:
    from io import StringIO

    from django.core.management import call_command

    keycache.verify(digest_of(issued_key), None, None, timezone.now())
    out = StringIO()
    call_command("apikeys_write_back", stdout=out)
    assert "1 key" in out.getvalue()
