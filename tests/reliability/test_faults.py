"""Faults: the real service under gunicorn while its database or its cache goes away, and
while a worker dies in the middle of a write.

Every server stopped here is a throwaway one this test session started (tests/servers.py):
never the machine's shared PostgreSQL or Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from tests.reliability.loader import Outcome, run_storm, verify_once
from tests.reliability.platform import Platform
from tests.servers import Cluster, RedisServer, Service, production_env, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

# Requests sent at once from several clients, so that every one of the 4 workers serves
# some of them (a single client's requests could all land on the same worker).
ROUNDS = 64
CLIENTS = 16


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def platform(cluster: Cluster, redis: RedisServer) -> Iterator[Platform]:
    database_url = cluster.fresh_database()
    service = Service(
        env=production_env(DATABASE_URL=database_url, CACHE_URL=redis.url()), workers=4
    )
    service.start()
    try:
        yield Platform(service, database_url, cluster)
    finally:
        service.stop()
        # A fault test that failed half-way must not leave the session's servers down.
        if not cluster.postgres.running:
            cluster.postgres.start()


def verify(platform: Platform, token: str, key: str) -> Outcome:
    return verify_once(platform.service.port, token, key, 0, "key")


def burst(platform: Platform, token: str, *keys: str) -> list[Outcome]:
    """ROUNDS verifications from CLIENTS concurrent clients, cycling through ``keys``."""
    return run_storm(
        platform.service,
        total=ROUNDS,
        clients=CLIENTS,
        tokens=[token],
        choose=lambda c, n: ("key", keys[(c + n) % len(keys)]),
    )


def test_database_down_answers_from_the_workers_state_or_a_coded_503_and_recovers_by_itself(
    platform: Platform,
) -> None:
    """PostgreSQL crashes. With Redis configured, a worker that already holds a key's state
    (and the M2M token's) answers for it, checked against Redis at every request: that is
    exactly what the database would say, since no key can change while the database is
    down. Everything that needs the database (a key or token a worker has not seen, a key
    changed just before the crash, the list, the token endpoint) is the coded 503, never an
    error page and never a stale answer. Counts made meanwhile are kept in Redis and
    written back once the database is back."""
    key_id, key = platform.issue_key("Survives an outage")
    revoked_id, revoked = platform.issue_key("Revoked just before the crash")
    (token,) = platform.verifiers(1)

    def storm() -> list[Outcome]:
        return run_storm(
            platform.service,
            total=ROUNDS,
            clients=CLIENTS,
            tokens=[token],
            choose=lambda c, n: ("key", key) if (c + n) % 2 else ("revoked", revoked),
        )

    before = storm()  # every worker meets both keys and the token
    assert all(o.is_valid for o in before), [(o.status, o.code) for o in before]
    postgres = platform.cluster.postgres

    # Key state commits synchronously, and the revocation marks the key changed in Redis
    # before it returns: a revocation that returned survives a crash that follows it at once.
    platform.call("DELETE", f"/api/v1/api_keys/{revoked_id}")
    postgres.stop("immediate")  # a crash, not a polite shutdown
    try:
        during = storm()
        listing = platform.service.request("GET", "/api/v1/api_keys", token=platform.admin)
        token_request = platform.service.request(
            "POST",
            "/oauth2/token",
            form={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        )
    finally:
        postgres.start()

    for outcome in during:
        if outcome.status == HTTPStatus.OK:
            # Only the unchanged key can be answered from a worker's state.
            assert outcome.label == "key" and outcome.is_valid, (outcome.label, outcome.body)
            continue
        assert outcome.status == HTTPStatus.SERVICE_UNAVAILABLE, (outcome.status, outcome.body)
        assert outcome.headers["content-type"].startswith("application/json")
        assert outcome.body == {
            "errors": [
                {
                    "code": "SERVICE_UNAVAILABLE",
                    "message": "The service is temporarily unavailable.",
                }
            ]
        }
        assert int(outcome.headers["retry-after"]) > 0
    # The revoked key was never accepted: its state changed, so it needs the database.
    assert not any(o.is_valid for o in during if o.label == "revoked")
    assert listing.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert listing.json()["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
    # The token endpoint too answers in OAuth's JSON, not with an HTML error page.
    assert token_request.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert token_request.json()["error"] == "temporarily_unavailable"

    # No restart of the service: every worker reconnects on its own at its next request.
    after = burst(platform, token, key)
    assert all(o.is_valid for o in after), [(o.status, o.code) for o in after]
    assert verify(platform, token, revoked).code == "API_KEY_REVOKED"
    # Every valid answer was counted once, those of the outage included (kept in Redis).
    served = sum(1 for o in before + during + after if o.label == "key" and o.is_valid)
    assert platform.written_row(key_id)["verification_count"] == served
    assert "Database unavailable: OperationalError" in platform.service.log_text()


def test_cache_down_keeps_verification_correct_and_logs_a_warning(
    platform: Platform, redis: RedisServer
) -> None:
    import redis as redis_client

    key_id, key = platform.issue_key("Survives a cache outage")
    (token,) = platform.verifiers(1)
    wrong = key[:-8] + ("A" if key[-8] != "A" else "B") + key[-7:]  # a typo: fails its checksum
    store = redis_client.Redis(host="127.0.0.1", port=redis.port)
    assert verify(platform, token, key).is_valid
    assert verify(platform, token, wrong).code == "API_KEY_INVALID"
    assert store.keys("LIMITS:apikeys*/verify:*"), "the limiter counts failures in Redis"
    # The verification above is counted in Redis until written back: write it back, since
    # this Redis keeps nothing across the restart below (README-scaleout: a Redis that loses
    # its memory loses the counts not yet written back).
    assert platform.written_row(key_id)["verification_count"] == 1

    redis.stop()
    try:
        during = burst(platform, token, key, wrong)
    finally:
        redis.start()

    assert all(o.status == HTTPStatus.OK for o in during), [(o.status, o.code) for o in during]
    assert all(o.is_valid for o in during if o.body and o.body.get("key_id") == key_id)
    assert sum(o.is_valid for o in during) == ROUNDS // 2
    assert {o.code for o in during if not o.is_valid} == {"API_KEY_INVALID"}
    assert (
        "Rate-limit storage unavailable (ConnectionError); not limiting."
        in platform.service.log_text()
    )

    # With Redis back, the limiter counts again without a restart of the service.
    store.flushall()
    assert verify(platform, token, wrong).code == "API_KEY_INVALID"
    wait_for(
        lambda: bool(store.keys("LIMITS:apikeys*/verify:*")),
        timeout=30,
        what="the limiter's counter",
    )
    assert platform.written_row(key_id)["verification_count"] == 1 + ROUNDS // 2


def _waiting_insert(platform: Platform, table: str) -> Any:
    with platform.cluster.postgres.connect(platform.database) as conn:
        return conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [f'INSERT INTO "{table}"%'],
        ).fetchone()


def test_a_worker_killed_in_the_middle_of_a_create_leaves_no_half_made_key(
    platform: Platform,
) -> None:
    postgres = platform.cluster.postgres
    with postgres.connect(platform.database) as conn:
        keys_before = conn.execute("SELECT count(*) FROM apikeys_apikey").fetchone()[0]
        events_before = conn.execute("SELECT count(*) FROM apikeys_auditevent").fetchone()[0]
        links_before = conn.execute("SELECT count(*) FROM apikeys_apikey_scopes").fetchone()[0]

    # Hold back the audit event, the create's last write: the worker's transaction then sits
    # with its key and scope rows written but not committed, and the worker is killed there.
    blocker = postgres.connect(platform.database)
    blocker.execute("LOCK TABLE apikeys_auditevent IN SHARE MODE")
    answers: list[Any] = []
    body = {
        "name": "Half-made",
        "api_id": platform.api_id,
        "scope_ids": ["read:orders"],
        "org_code": platform.org_code,
    }

    def create() -> None:
        try:
            answers.append(
                platform.service.request("POST", "/api/v1/api_keys", body, token=platform.admin)
            )
        except OSError as exc:  # the worker died: no HTTP answer at all
            answers.append(exc)

    creating = threading.Thread(target=create, daemon=True)
    creating.start()
    try:
        wait_for(
            lambda: _waiting_insert(platform, "apikeys_auditevent") is not None,
            timeout=120,
            what="the create to block on its audit event",
        )
        killed = platform.service.kill_workers()
    finally:
        blocker.rollback()  # let the dead worker's backend run on and find its client gone
        blocker.close()
    creating.join(timeout=120)

    assert killed and answers and not (hasattr(answers[0], "status") and answers[0].status < 500)
    # PostgreSQL rolls the orphaned transaction back when it finds the client gone.
    wait_for(
        lambda: _waiting_insert(platform, "apikeys_auditevent") is None,
        timeout=120,
        what="rollback",
    )
    with postgres.connect(platform.database) as conn:

        def count(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        wait_for(
            lambda: (
                count(
                    "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
                )
                == 0
            ),
            timeout=120,
            what="no transaction left open",
        )
        assert count("SELECT count(*) FROM apikeys_apikey") == keys_before
        assert count("SELECT count(*) FROM apikeys_apikey WHERE name = 'Half-made'") == 0
        assert count("SELECT count(*) FROM apikeys_apikey_scopes") == links_before
        assert count("SELECT count(*) FROM apikeys_auditevent") == events_before

    # The master replaced its workers; the same create now succeeds, whole.
    platform.service.wait_for_workers()
    key_id, key = platform.issue_key("Half-made")
    (token,) = platform.verifiers(1)
    assert verify(platform, token, key).is_valid
    with postgres.connect(platform.database) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM apikeys_auditevent WHERE target_id = %s AND action = 'api_key.issued'",
                [key_id],
            ).fetchone()[0]
            == 1
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM apikeys_apikey_scopes WHERE apikey_id = %s", [key_id]
            ).fetchone()[0]
            == 1
        )
