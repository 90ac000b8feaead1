"""What the speed of verification must never cost: exact counts under concurrency, and a
revoke or rotate honoured by every worker on its very next request.

Each test runs on PostgreSQL and on SQLite (the embedded default), with three worker
processes that keep their database connections between requests as gunicorn workers do,
plus threads inside them. These are behaviour tests: nothing here is timed.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.performance.conftest import Workers

# One xdist worker runs them all (make test uses --dist loadgroup): one throwaway database
# per backend to create and migrate, not one per worker.
pytestmark = pytest.mark.xdist_group("performance")

HTTP_PER_WORKER = 30
THREADS = 3
PER_THREAD = 15


def _valid(results: list[dict]) -> list[dict]:
    assert results and all(r["is_valid"] and r["code"] == "API_KEY_VERIFIED" for r in results), (
        results[:3]
    )
    return results


def test_concurrent_verifications_are_all_counted_exactly_once(workers: Workers) -> None:
    made = workers.fresh_key()
    # Every worker verifies the same key over HTTP at the same time (one hot row), then
    # every worker runs threads calling the service directly, at the same time.
    http = workers.all_at_once(op="verify_http", key=made["key"], n=HTTP_PER_WORKER)
    threaded = workers.all_at_once(
        op="verify_threads", key=made["key"], threads=THREADS, n=PER_THREAD
    )
    results = _valid([r for answer in http + threaded for r in answer["results"]])
    total = len(workers.web) * (HTTP_PER_WORKER + THREADS * PER_THREAD)
    assert len(results) == total

    # Each verification saw its own count: none lost, none counted twice.
    assert sorted(r["verification_count"] for r in results) == list(range(1, total + 1))
    latest = max(datetime.fromisoformat(r["last_verified_on"]) for r in results)

    # Every read shows all of them, and the latest time, from any worker.
    for worker in [workers.controller, *workers.web]:
        for read in (
            worker.call(op="get", key_id=made["key_id"]),
            worker.call(op="list", key_id=made["key_id"], org_code=made["org_code"]),
        ):
            assert read["verification_count"] == total
            assert datetime.fromisoformat(read["last_verified_on"]) == latest
    # And the next verification answers the next number.
    (after,) = workers.web[0].call(op="verify_http", key=made["key"])["results"]
    assert after["verification_count"] == total + 1


def test_revoke_is_honoured_by_every_worker_on_its_next_request(workers: Workers) -> None:
    made = workers.fresh_key()
    # Warm every worker: connection open, the key verified (any cache would now hold it).
    for answer in workers.all_at_once(op="verify_http", key=made["key"], n=3):
        _valid(answer["results"])
    for answer in workers.all_at_once(op="example", key=made["key"]):
        assert answer == {"status": 200, "code": None}

    workers.controller.call(op="revoke", key_id=made["key_id"])

    for answer in workers.all_at_once(op="verify_http", key=made["key"], n=1):
        (result,) = answer["results"]
        assert (result["code"], result["is_valid"], result["key_id"]) == (
            "API_KEY_REVOKED",
            False,
            made["key_id"],
        )
    for answer in workers.all_at_once(op="example", key=made["key"]):
        assert answer == {"status": 401, "code": "API_KEY_REVOKED"}
    for answer in workers.all_at_once(op="verify_threads", key=made["key"], threads=2, n=2):
        assert {r["code"] for r in answer["results"]} == {"API_KEY_REVOKED"}
    # Refused verifications are not counted.
    assert workers.controller.call(op="get", key_id=made["key_id"])[
        "verification_count"
    ] == 3 * len(workers.web) + len(workers.web)


def test_rotation_without_grace_is_honoured_by_every_worker_on_its_next_request(
    workers: Workers,
) -> None:
    made = workers.fresh_key()
    for answer in workers.all_at_once(op="verify_http", key=made["key"], n=2):
        _valid(answer["results"])

    new_key = workers.controller.call(op="rotate", key_id=made["key_id"], grace=0)["key"]

    for answer in workers.all_at_once(op="verify_http", key=made["key"], n=1):
        assert [r["code"] for r in answer["results"]] == ["API_KEY_INVALID"]
    for answer in workers.all_at_once(op="example", key=made["key"]):
        assert answer == {"status": 401, "code": "API_KEY_INVALID"}
    # The new secret works everywhere at once, on the same key, with the count kept.
    counts = []
    for answer in workers.all_at_once(op="verify_http", key=new_key, n=1):
        (result,) = _valid(answer["results"])
        assert result["key_id"] == made["key_id"]
        counts.append(result["verification_count"])
    assert sorted(counts) == list(range(2 * len(workers.web) + 1, 3 * len(workers.web) + 1))


def test_revoke_during_a_rotation_grace_period_ends_both_secrets_on_every_worker(
    workers: Workers,
) -> None:
    made = workers.fresh_key()
    new_key = workers.controller.call(op="rotate", key_id=made["key_id"], grace=3600)["key"]
    for key in (made["key"], new_key):
        for answer in workers.all_at_once(op="verify_http", key=key, n=1):
            _valid(answer["results"])

    workers.controller.call(op="revoke", key_id=made["key_id"])

    # The new secret says revoked; the old one, whose grace ended with the revoke, is
    # simply no longer a key.
    for key, code in ((new_key, "API_KEY_REVOKED"), (made["key"], "API_KEY_INVALID")):
        for answer in workers.all_at_once(op="verify_http", key=key, n=1):
            assert [r["code"] for r in answer["results"]] == [code]
        for answer in workers.all_at_once(op="example", key=key):
            assert answer == {"status": 401, "code": code}


def test_bulk_issued_keys_verify_on_each_database(workers: Workers) -> None:
    """apikeys.bulk writes with COPY on PostgreSQL and bulk_create elsewhere: both paths
    make keys that every worker can verify, with their scope rows."""
    made = workers.fresh_key()
    loaded = workers.controller.call(
        op="bulk", key_id=made["key_id"], org_code=made["org_code"], count=30, batch_size=8
    )
    assert loaded == {
        "codes": ["API_KEY_VERIFIED"],
        "scopes": ["read:users"],
        "ids_match": True,
        "scope_rows": 30,
        "rows": 30,
    }


def test_the_verify_statement_is_prepared_once_per_connection_when_allowed(
    postgresql_database_url: str,
) -> None:
    """With prepared statements allowed (``OPTIONS["prepare_threshold"]``), PostgreSQL plans
    the verify statement once per connection instead of on every call: it must be sent
    with its parameters apart from its text, or it could never be prepared. That statement is
    the database path: the worker runs without Redis (with it, a known key is verified in
    Redis, apikeys.keycache, and the statement runs only when Redis fails)."""
    from tests.performance.conftest import Worker

    worker = Worker(postgresql_database_url, cache_url="locmemcache://")
    try:
        made = worker.call(op="setup", tag="prepared")
        answer = worker.call(op="prepared", key=made["key"], n=4)
    finally:
        worker.close()
    assert answer["counts"] == [1, 2, 3, 4]
    verify_statements = [s for s in answer["prepared"] if "verification_count + 1" in s]
    assert len(verify_statements) == 1, answer["prepared"]
    assert "$1" in verify_statements[0]
