"""Scale-out (issue 16): two gunicorn instances, two "machines", sharing one PostgreSQL and
one Redis, each worker with its own cache of key state (apikeys.keycache) and the
write-back thread on, as in production.

- A revocation, a rotation without grace and an expiry are honoured by the very next
  request on every worker of both machines, once the call that made them returned, with
  every worker warm (it served the key at least twice, so it answered from its cache).
  Which worker served a request is read from gunicorn's access log (``%(p)s``: its pid).
- 5,000 verifications across both machines, one worker SIGKILLed mid-storm: the count read
  through the API, and the row after ``apikeys_write_back``, is the number of valid answers
  (plus the one request the killed worker may have counted without answering it).
- Redis restarted without its memory mid-storm: no revoked key accepted after its revoke
  returned; counts never exceed what was served and lose at most what was not yet written
  back when Redis died.
- Redis stopped: every request still answered correctly (the database path), no 5xx; the
  fast path comes back by itself.

Every server here is one this test started (tests/servers.py). No assertion is on time:
waits are bounded, generously, only to stop a broken run.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
import redis as redis_client

from tests.reliability.loader import VERIFY_PATH, Outcome, Storm
from tests.reliability.platform import Platform
from tests.servers import (
    Cluster,
    RedisServer,
    Service,
    manage,
    production_env,
    wait_for,
)

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

WORKERS = 2  # per machine: 4 workers in all on a 2-core machine
CLIENTS = 8  # concurrent clients per burst and machine, more than its workers
STORM = 5_000
# gunicorn's access log, one line per request: the worker's pid, the path and query.
ACCESS_FORMAT = "%(p)s %(U)s %({x-probe}i)s %(s)s"
ACCESS_LINE = re.compile(r"^<(\d+)> /api/v1/api_keys/verify (\S+) (\d{3})$", re.MULTILINE)
# Bursts tried before giving up on reaching every worker (a broken run, never a slow one).
MAX_BURSTS = 60


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Machines:
    platform: Platform  # its service is machine A
    a: Service
    b: Service
    redis: RedisServer
    verifier: str  # an M2M token holding verify:api_keys

    @property
    def both(self) -> tuple[Service, Service]:
        return self.a, self.b


@pytest.fixture(scope="module")
def machines(cluster: Cluster, redis: RedisServer) -> Iterator[Machines]:
    database_url = cluster.fresh_database()
    env = production_env(
        DATABASE_URL=database_url,
        CACHE_URL=redis.url(),
        # Refusals are what these tests look at: no 429 in their way.
        APIKEYS_VERIFY_FAILURE_LIMIT="1000000",
        APIKEYS_COUNTS_WRITE_BACK_THREAD="true",
        LOG_LEVEL="WARNING",
        GUNICORN_CMD_ARGS=f"--access-logformat '{ACCESS_FORMAT}'",
    )
    a = Service(env=dict(env), workers=WORKERS)
    b = Service(env=dict(env), workers=WORKERS)
    a.start()
    try:
        b.start()
        try:
            platform = Platform(a, database_url, cluster)
            (verifier,) = platform.verifiers(1)
            yield Machines(platform, a, b, redis, verifier)
        finally:
            b.stop()
    finally:
        a.stop()


# --------------------------------------------------------------------------- probes


def probe(service: Service, token: str, key: str, tag: str) -> Outcome:
    """One verification, tagged (a header the access log shows) so that its worker can be
    told."""
    answer = service.request(
        "POST", VERIFY_PATH, {"api_key": key}, token=token, headers={"X-Probe": tag}
    )
    body = answer.json() if answer.body[:1] == b"{" else None
    return Outcome(0, tag, 0.0, 0.0, answer.status, body, answer.headers)


def served(service: Service, tag: str) -> Counter[int]:
    """How many requests tagged ``tag`` each worker (pid) of ``service`` answered."""
    return Counter(int(m[0]) for m in ACCESS_LINE.findall(service.log_text()) if m[1] == tag)


def burst(service: Service, token: str, key: str, tag: str) -> list[Outcome]:
    """2 x CLIENTS tagged verifications from CLIENTS concurrent clients."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(2):
            outcome = probe(service, token, key, tag)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(outcomes) == 2 * CLIENTS
    return outcomes


def until_every_worker(
    service: Service, token: str, key: str, tag: str, times: int
) -> list[Outcome]:
    """Bursts of tagged verifications until every worker of ``service`` has answered at
    least ``times`` of them; every answer."""
    outcomes: list[Outcome] = []
    for _ in range(MAX_BURSTS):
        outcomes += burst(service, token, key, tag)
        sent = len(outcomes)
        # The worker writes its access-log line just after its answer: wait for them all.
        wait_for(
            lambda sent=sent: sum(served(service, tag).values()) == sent,
            timeout=60,
            what="the access log",
        )
        by_worker = served(service, tag)
        if all(by_worker[pid] >= times for pid in service.worker_pids()):
            return outcomes
    raise AssertionError(f"some worker never served {tag}: {served(service, tag)}")


def warm(machines: Machines, key: str, tag: str) -> None:
    """Every worker of both machines has verified ``key`` at least twice: the second time
    from its cache."""
    for n, service in enumerate(machines.both):
        outcomes = until_every_worker(service, machines.verifier, key, f"{tag}-warm{n}", 2)
        assert all(o.is_valid for o in outcomes), {(o.status, o.code) for o in outcomes}


def refused_everywhere(machines: Machines, key: str, tag: str, code: str) -> None:
    """Right now, every worker of both machines refuses ``key`` with ``code``: each serves
    at least one request, and not one answer is anything else."""
    for n, service in enumerate(machines.both):
        outcomes = until_every_worker(service, machines.verifier, key, f"{tag}-after{n}", 1)
        assert {(o.status, o.code) for o in outcomes} == {(HTTPStatus.OK, code)}


# --------------------------------------------------------------------------- 0 s changes


def test_revocation_is_honoured_at_once_on_every_worker_of_both_machines(
    machines: Machines,
) -> None:
    key_id, key = machines.platform.issue_key("Revoked on two machines")
    warm(machines, key, "revoke")

    assert machines.platform.call("DELETE", f"/api/v1/api_keys/{key_id}")["code"] == "OK"

    refused_everywhere(machines, key, "revoke", "API_KEY_REVOKED")


def test_rotation_without_grace_is_honoured_at_once_on_every_worker_of_both_machines(
    machines: Machines,
) -> None:
    key_id, key = machines.platform.issue_key("Rotated on two machines")
    warm(machines, key, "rotate")

    new = machines.platform.call("PUT", f"/api/v1/api_keys/{key_id}", {})["api_key"]["key"]

    refused_everywhere(machines, key, "rotate", "API_KEY_INVALID")
    for n, service in enumerate(machines.both):
        outcomes = until_every_worker(service, machines.verifier, new, f"rotate-new{n}", 1)
        assert all(o.is_valid for o in outcomes)


def test_expiry_is_honoured_at_once_on_every_worker_of_both_machines(
    machines: Machines,
) -> None:
    """A key that expires while every worker holds it: the next request on each is refused.
    The warm-up must end before the expiry, so a slow machine tries again with more time."""
    for lifetime in (15, 30, 60, 120):
        expires_at = datetime.now(tz=UTC) + timedelta(seconds=lifetime)
        created = machines.platform.call(
            "POST",
            "/api/v1/api_keys",
            {
                "name": f"Expires in {lifetime}s",
                "api_id": machines.platform.api_id,
                "scope_ids": ["read:orders"],
                "org_code": machines.platform.org_code,
                "expires_at": expires_at.isoformat(),
            },
        )
        key = created["api_key"]["key"]
        warm(machines, key, f"expire{lifetime}")
        if datetime.now(tz=UTC) < expires_at:
            break
    else:
        pytest.fail("every worker could not be warmed before the key expired")
    # Let the expiry pass (the service's clock is this machine's).
    time.sleep(max(0.0, (expires_at - datetime.now(tz=UTC)).total_seconds()) + 0.05)

    refused_everywhere(machines, key, f"expire{lifetime}", "API_KEY_EXPIRED")


# --------------------------------------------------------------------------- counts


def two_storms(machines: Machines, total: int, choose: Callable[[int, int], tuple[str, str]]):
    """``total`` verifications, half on each machine, from CLIENTS clients each."""
    return [
        Storm(service, total=total // 2, clients=CLIENTS, tokens=[machines.verifier], choose=choose)
        for service in machines.both
    ]


def api_count(machines: Machines, key_id: str, service: Service | None = None) -> int:
    answer = (service or machines.a).request(
        "GET", f"/api/v1/api_keys/{key_id}", token=machines.platform.admin
    )
    assert answer.status == HTTPStatus.OK, answer.body
    return int(answer.json()["api_key"]["verification_count"])


def write_back(machines: Machines) -> None:
    assert "Wrote back" in manage(machines.a.env, "apikeys_write_back")


def test_counts_are_exact_across_two_machines_with_a_worker_killed_mid_storm(
    machines: Machines,
) -> None:
    key_id, key = machines.platform.issue_key("Counted on two machines")
    storms = two_storms(machines, STORM, lambda c, n: ("key", key))
    for storm in storms:
        storm.start()
    storms[0].wait_until(STORM // 6)
    victim = machines.a.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    outcomes = [o for storm in storms for o in storm.join()]
    machines.a.wait_for_workers()

    unanswered = [o for o in outcomes if o.status == 0]
    answered = [o for o in outcomes if o.status != 0]
    # A sync worker serves one request at a time: the killed one can drop one at most.
    assert len(unanswered) <= 1
    assert all(o.is_valid for o in answered), Counter((o.status, o.code) for o in answered)
    valid = len(answered)
    # Each answer's count includes itself: all distinct, so none was counted twice.
    counts = [o.body["verification_count"] for o in answered if o.body]
    assert len(set(counts)) == valid
    # The killed worker may have counted the request it died answering, never more.
    live = api_count(machines, key_id)
    assert valid <= live <= valid + len(unanswered)
    assert max(counts) <= live
    assert api_count(machines, key_id, machines.b) == live
    write_back(machines)
    assert machines.platform.row(key_id)["verification_count"] == live
    assert api_count(machines, key_id) == live
    print(f"\ntwo-machine storm: {valid} valid, {len(unanswered)} unanswered, count {live}")


# --------------------------------------------------------------------------- Redis faults


@dataclass
class Moment:
    at: float | None = None

    def now(self) -> None:
        self.at = time.monotonic()


def test_a_redis_restart_mid_storm_never_accepts_a_revoked_key_nor_double_counts(
    machines: Machines,
) -> None:
    platform = machines.platform
    key_id, key = platform.issue_key("Counted across a Redis restart")
    revoked_id, revoked = platform.issue_key("Revoked after a Redis restart")
    warm(machines, key, "restart-key")
    warm(machines, revoked, "restart-revoked")
    write_back(machines)
    # Every verification of the warm-up is in the row now: the storm starts from it.
    before = platform.row(key_id)["verification_count"]
    assert before == api_count(machines, key_id)
    revoked_at = Moment()
    stopped_at = Moment()

    def choose(client: int, n: int) -> tuple[str, str]:
        return ("revoked", revoked) if (client + n) % 4 == 0 else ("key", key)

    storms = two_storms(machines, 2_000, choose)
    for storm in storms:
        storm.start()
    storms[0].wait_until(300)
    # Wait for a write-back of storm counts, then lose Redis's memory.
    wait_for(
        lambda: platform.row(key_id)["verification_count"] > before,
        timeout=120,
        what="a write-back",
    )
    written = platform.row(key_id)["verification_count"]
    machines.redis.stop()
    stopped_at.now()
    storms[0].wait_until(len(storms[0].outcomes) + 100)
    machines.redis.start()
    # Back on Redis (a new epoch), with both keys cached again: then revoke.
    storms[0].wait_until(len(storms[0].outcomes) + 200)
    assert platform.call("DELETE", f"/api/v1/api_keys/{revoked_id}")["code"] == "OK"
    revoked_at.now()
    outcomes = [o for storm in storms for o in storm.join()]

    assert all(o.status == HTTPStatus.OK for o in outcomes), Counter(o.status for o in outcomes)
    assert all(o.is_valid for o in outcomes if o.label == "key")
    late = [o for o in outcomes if o.label == "revoked" and o.started > revoked_at.at]
    assert late, "the storm must straddle the revocation"
    assert {o.code for o in late} == {"API_KEY_REVOKED"}
    assert any(o.is_valid for o in outcomes if o.label == "revoked")

    write_back(machines)
    valid = sum(o.is_valid for o in outcomes if o.label == "key")
    final = platform.row(key_id)["verification_count"]
    assert api_count(machines, key_id) == final
    # Never counted twice.
    assert final <= before + valid
    # Lost at most what was counted in Redis and not yet written back when it died: what
    # was written stays, and every verification that started after the stop is counted.
    after_stop = sum(o.is_valid for o in outcomes if o.label == "key" and o.started > stopped_at.at)
    assert final >= written + after_stop
    print(
        f"\nRedis restart: {valid} valid, count {final - before}, lost {before + valid - final} "
        f"(at most {before + valid - written - after_stop} not yet written back); "
        f"{len(late)} revoked-key requests after the revoke all refused"
    )


def test_redis_stopped_means_the_database_path_without_errors_then_the_fast_path(
    machines: Machines,
) -> None:
    platform = machines.platform
    key_id, key = platform.issue_key("Verified while Redis is down")
    revoked_id, revoked = platform.issue_key("Revoked while Redis is down")
    warm(machines, key, "down-key")
    warm(machines, revoked, "down-revoked")
    store = redis_client.Redis(host="127.0.0.1", port=machines.redis.port)
    write_back(machines)
    counted_before = platform.row(key_id)["verification_count"]
    assert counted_before == api_count(machines, key_id)

    machines.redis.stop()
    try:
        assert platform.call("DELETE", f"/api/v1/api_keys/{revoked_id}")["code"] == "OK"
        for n, service in enumerate(machines.both):
            valid = until_every_worker(service, machines.verifier, key, f"down-key{n}", 1)
            assert all(o.is_valid for o in valid), {(o.status, o.code) for o in valid}
        refused_everywhere(machines, revoked, "down-revoked", "API_KEY_REVOKED")
        during = sum(served(s, f"down-key{n}").total() for n, s in enumerate(machines.both))
        # Counted synchronously in the row: nothing can be pending in a Redis that is down.
        assert platform.row(key_id)["verification_count"] >= during
    finally:
        machines.redis.start()

    # Back by itself: verifications are counted in Redis again (a new epoch, counts there).
    back: list[Outcome] = []

    def fast_again() -> bool:
        for service in machines.both:
            back.append(probe(service, machines.verifier, key, "down-back"))
            assert back[-1].is_valid
        return any(
            store.hexists(name, key_id)
            for name in store.scan_iter(match="{apikeys:*}:c:*", count=1000)
        )

    wait_for(fast_again, timeout=120, what="the fast path")
    refused_everywhere(machines, revoked, "down-revoked-back", "API_KEY_REVOKED")
    write_back(machines)
    assert platform.row(key_id)["verification_count"] == api_count(machines, key_id)
    assert api_count(machines, key_id) == counted_before + during + len(back)
