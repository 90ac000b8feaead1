"""The sliding-window limiter (apikeys.ratelimit): never more than ``limit`` accepted events in
any span of ``window`` seconds, however the span lines up with the clock; counted in a storage
every worker shares (Redis, else the database). Exactness under concurrent processes is in
tests/reliability/test_embedded_limits.py (gunicorn workers on SQLite and on PostgreSQL)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from apikeys import ratelimit

DB = "apikeys-db://"


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    """The limiter's time, set by the test: ``clock[0] = t``."""
    now = [0.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    return now


@pytest.fixture
def db_storage(settings: Any) -> None:
    settings.APIKEYS = {**settings.APIKEYS, "RATELIMIT_STORAGE": DB}


@pytest.mark.django_db
def test_the_window_slides_instead_of_resetting_on_the_minute(db_storage, clock) -> None:
    """Three events just before a minute boundary fill the window: a fixed window would
    accept three more a second later; the sliding one refuses until a minute has passed."""
    clock[0] = 60 * 1_000_000 - 1.0
    assert [ratelimit.hit("b", limit=3, window=60) for _ in range(3)] == [True] * 3
    clock[0] += 2.0  # across the boundary
    assert ratelimit.hit("b", limit=3, window=60) is False
    assert ratelimit.retry_after("b", limit=3, window=60) == 58
    clock[0] += 58.5  # the first three are now older than the window
    assert ratelimit.hit("b", limit=3, window=60) is True


@pytest.mark.django_db
def test_no_span_of_the_window_ever_holds_more_than_the_limit(db_storage, clock) -> None:
    """Random arrivals over ten minutes: every accepted event has fewer than ``limit``
    accepted ones in the window before it, and every refused one has exactly ``limit``."""
    rng = random.Random(1913)
    limit, window = 5, 60
    accepted: list[float] = []
    times = sorted(rng.uniform(0, 600) for _ in range(150))
    for t in times:
        clock[0] = 1_000_000 + t
        in_window = [a for a in accepted if a > t - window]
        if ratelimit.hit("p", limit=limit, window=window):
            assert len(in_window) < limit
            accepted.append(t)
        else:
            assert len(in_window) == limit
    assert 40 <= len(accepted) < 150


@pytest.mark.django_db
def test_clear_forgets_a_bucket_and_buckets_are_separate(db_storage) -> None:
    assert ratelimit.hit("x", limit=1, window=60) is True
    assert ratelimit.hit("x", limit=1, window=60) is False
    assert ratelimit.hit("y", limit=1, window=60) is True
    ratelimit.clear("x", limit=1, window=60)
    assert ratelimit.test("x", limit=1, window=60) is True
    assert ratelimit.hit("x", limit=1, window=60) is True


@pytest.mark.django_db
def test_record_failure_says_how_long_to_wait(db_storage, clock) -> None:
    clock[0] = 5_000.0
    assert [ratelimit.record_failure("f", limit=2, window=30) for _ in range(2)] == [None, None]
    clock[0] += 10
    assert ratelimit.record_failure("f", limit=2, window=30) == 20


def test_the_default_storage_is_the_caches_redis_else_the_database(settings) -> None:
    settings.APIKEYS = {**settings.APIKEYS, "RATELIMIT_STORAGE": ""}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ratelimit.storage_uri() == DB
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/7",
        }
    }
    assert ratelimit.storage_uri() == "redis://127.0.0.1:6379/7"
    settings.APIKEYS = {**settings.APIKEYS, "RATELIMIT_STORAGE": "memory://"}
    assert ratelimit.storage_uri() == "memory://"


@pytest.mark.django_db
def test_a_storage_that_fails_between_the_count_and_the_wait_is_unavailable(
    db_storage, monkeypatch
) -> None:
    """retry_after reads the window again: a storage failing there is LimiterUnavailable, as
    for every other call, so sign-in fails closed (503) and verification steps aside."""
    assert ratelimit.hit("w", limit=1, window=60) is True
    limiter = ratelimit.limiter()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("storage down")

    monkeypatch.setattr(limiter, "get_window_stats", down)
    with pytest.raises(ratelimit.LimiterUnavailable):
        ratelimit.retry_after("w", limit=1, window=60)
    assert ratelimit.record_failure("w", limit=1, window=60) is None
