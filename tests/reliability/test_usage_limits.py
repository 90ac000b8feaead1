"""Usage limits under concurrency: the real service under gunicorn with 4 worker processes,
32 concurrent clients, on each backend it supports: SQLite (the embedded default, no
Redis), PostgreSQL without Redis (the database path), and PostgreSQL with Redis (the
verify script).

- Rate limit: over a storm, no ``duration``-second span holds more than ``limit`` valid
  answers, by the times the service itself stamped on them (``last_verified_on``).
- Credits: with R left and N > R concurrent verifications of cost 1, exactly R are valid.
- Refill: a key whose credits belong to an earlier period is refilled exactly once
  however many workers verify it at once.
- Usage history: the ``verified`` buckets add up to ``verification_count``, and the refusals
  to the refusals the clients saw.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.loader import Outcome, run_storm
from tests.reliability.platform import Platform
from tests.servers import Cluster, RedisServer, Service, manage, production_env

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

CLIENTS = 32
WORKERS = 4


class LimitsPlatform(Platform):
    """A Platform on any backend, with a way to move a key's credits to an earlier period
    (as if the clock had passed a refill boundary)."""

    def __init__(self, service: Service, database_url: str, cluster: Cluster) -> None:
        self.database_url = database_url
        super().__init__(service, database_url, cluster)

    def issue_limited(self, name: str, **limits: Any) -> tuple[str, str]:
        created = self.call(
            "POST",
            "/api/v1/api_keys",
            {"name": name, "api_id": self.api_id, "org_code": self.org_code, **limits},
        )
        return created["api_key"]["id"], created["api_key"]["key"]

    def move_credits_to_previous_period(self, key_id: str) -> None:
        sql = "UPDATE apikeys_apikey SET credits_period = credits_period - 1 WHERE id = "
        if self.database_url.startswith("sqlite"):
            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as conn:
                conn.execute(sql + "?", [key_id])
        else:
            with self.cluster.postgres.connect(self.database) as conn:
                conn.execute(sql + "%s", [key_id])


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "postgresql+redis"])
def platform(request: Any, cluster: Cluster) -> Iterator[LimitsPlatform]:
    redis = None
    if request.param == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="apikeys-limits-")) / "db.sqlite3"
        database_url = f"sqlite:///{path}"
        manage(production_env(DATABASE_URL=database_url), "migrate", "--noinput", "-v0")
        cache_url = "locmemcache://"
    else:
        database_url = cluster.fresh_database()
        cache_url = "locmemcache://"
        if request.param == "postgresql+redis":
            redis = RedisServer()
            redis.start()
            cache_url = redis.url()
    service = Service(
        env=production_env(
            DATABASE_URL=database_url,
            CACHE_URL=cache_url,
            APIKEYS_VERIFY_FAILURE_LIMIT="100000",
            LOG_LEVEL="WARNING",
        ),
        workers=WORKERS,
        access_log=False,
    )
    service.start()
    try:
        yield LimitsPlatform(service, database_url, cluster)
    finally:
        service.stop()
        if redis is not None:
            redis.stop()


def storm(platform: LimitsPlatform, key: str, total: int) -> list[Outcome]:
    outcomes = run_storm(
        platform.service,
        total=total,
        clients=CLIENTS,
        tokens=platform.verifiers(4),
        choose=lambda c, n: ("key", key),
    )
    assert {o.status for o in outcomes} == {200}, {o.status for o in outcomes}
    return outcomes


def usage_today(platform: LimitsPlatform, key_id: str) -> dict[str, int]:
    today = datetime.now(UTC).date().isoformat()
    buckets = platform.call(
        "GET", f"/api/v1/api_keys/{key_id}/usage?from={today}&to={today}&granularity=hour"
    )["usage"]
    return {o: sum(b[o] for b in buckets) for o in ("verified", "rate_limited", "usage_exceeded")}


def test_no_window_holds_more_than_the_limit(platform: LimitsPlatform) -> None:
    limit, duration = 15, 1
    key_id, key = platform.issue_limited(
        "Windowed", ratelimit={"limit": limit, "duration": duration}
    )

    outcomes = storm(platform, key, 800)

    valid = sorted(
        datetime.fromisoformat(o.body["last_verified_on"]).timestamp()
        for o in outcomes
        if o.is_valid and o.body
    )
    refused = [o for o in outcomes if o.code == "API_KEY_RATE_LIMITED"]
    assert len(valid) + len(refused) == len(outcomes)
    assert refused, "the storm must hit the limit"
    # Any `duration` span holds at most `limit` valid answers: the (limit+1)-th after any
    # answer is at least `duration` later.
    for i in range(len(valid) - limit):
        assert valid[i + limit] - valid[i] >= duration - 1e-6, (i, valid[i], valid[i + limit])
    for o in refused:
        assert o.body and o.body["ratelimit"]["remaining"] == 0 and o.body["ratelimit"]["reset"]
        assert o.body["key_id"] == key_id and o.body["org_code"] == platform.org_code
    read = platform.call("GET", f"/api/v1/api_keys/{key_id}")["api_key"]
    assert read["verification_count"] == len(valid)
    usage = usage_today(platform, key_id)
    assert usage["verified"] == len(valid) and usage["rate_limited"] == len(refused)


def test_credits_are_exact_under_concurrency(platform: LimitsPlatform) -> None:
    remaining = 100
    key_id, key = platform.issue_limited("Credits", credits={"remaining": remaining})

    outcomes = storm(platform, key, 320)

    assert sum(o.is_valid for o in outcomes) == remaining
    assert {o.code for o in outcomes if not o.is_valid} == {"API_KEY_USAGE_EXCEEDED"}
    # Each valid answer reports the credits left after it: each value once.
    left = sorted(o.body["credits_remaining"] for o in outcomes if o.is_valid and o.body)
    assert left == list(range(remaining))
    read = platform.call("GET", f"/api/v1/api_keys/{key_id}")["api_key"]
    assert read["credits"]["remaining"] == 0 and read["verification_count"] == remaining
    usage = usage_today(platform, key_id)
    assert usage == {"verified": remaining, "rate_limited": 0, "usage_exceeded": 320 - remaining}


def test_a_refill_happens_exactly_once_with_every_worker_verifying(
    platform: LimitsPlatform,
) -> None:
    amount = 60
    key_id, key = platform.issue_limited(
        "Refilled", credits={"remaining": 0, "refill": {"interval": "daily", "amount": amount}}
    )
    platform.move_credits_to_previous_period(key_id)

    outcomes = storm(platform, key, 256)

    assert sum(o.is_valid for o in outcomes) == amount
    read = platform.call("GET", f"/api/v1/api_keys/{key_id}")["api_key"]
    assert read["credits"]["remaining"] == 0 and read["verification_count"] == amount
