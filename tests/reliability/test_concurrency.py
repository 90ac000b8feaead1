"""Concurrency on PostgreSQL: the real service under gunicorn (4 workers), a bounded loader
on loopback with 32 concurrent clients, and the database read back afterwards.

- 5,000 verifications of one key end with a count of exactly 5,000.
- A rotation in the middle of a storm: no request that started after the rotation returned
  succeeds with the old secret (unless a grace period was asked), and every request with
  the new secret succeeds; the count is exactly the number of successes observed.
- The same for a revocation.
- Failed verifications are rate limited per calling application under load (429 with
  ``Retry-After``), exactly at the limit, while that caller's valid keys keep verifying and
  other callers are not affected. The limiter's counter lives in Redis, shared by the
  workers; a counter per worker would let 4× the limit through.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from apikeys import crypto
from tests.reliability.loader import Outcome, Storm, run_storm, verify_once
from tests.reliability.platform import Platform
from tests.servers import Browser, Cluster, RedisServer, Service, production_env

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

CLIENTS = 32
COUNT_STORM = 5_000
SWITCH_STORM = 1_200
# Failed verifications per application and window. The window (sliding, so never straddled)
# is longer than any storm, so the limit applies to a whole storm.
FAILURE_LIMIT = 100
FAILURE_WINDOW = 3_600
# Storms spread their clients over this many applications, so that the old-secret
# failures after a rotation stay under FAILURE_LIMIT for each of them: each application
# serves 32 / 16 = 2 clients of 1,200 / 32 = 38 requests, 76 < 100 (a 429 would also be a
# refusal, but these tests want to see the contract's own verdict).
STORM_APPLICATIONS = 16


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
        env=production_env(
            DATABASE_URL=database_url,
            CACHE_URL=redis.url(),
            APIKEYS_VERIFY_FAILURE_LIMIT=str(FAILURE_LIMIT),
            APIKEYS_VERIFY_FAILURE_WINDOW=str(FAILURE_WINDOW),
            LOG_LEVEL="WARNING",
        ),
        workers=4,
        # Access logs off: 10,000 lines would only slow the storms down here (the
        # secrets-hygiene tests read a server's full logs).
        access_log=False,
    )
    service.start()
    try:
        yield Platform(service, database_url, cluster)
    finally:
        service.stop()


def assert_every_request_answered(outcomes: list[Outcome]) -> None:
    """No dropped connection, no 5xx, and every answer is the contract's JSON."""
    statuses: dict[int, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    assert set(statuses) <= {HTTPStatus.OK}, statuses
    assert all(o.body is not None and "code" in o.body for o in outcomes)


def test_five_thousand_concurrent_verifications_count_exactly_five_thousand(
    platform: Platform,
) -> None:
    key_id, key = platform.issue_key("Storm")
    tokens = platform.verifiers(4)

    outcomes = run_storm(
        platform.service,
        total=COUNT_STORM,
        clients=CLIENTS,
        tokens=tokens,
        choose=lambda c, n: ("key", key),
    )

    assert_every_request_answered(outcomes)
    assert sum(o.is_valid for o in outcomes) == COUNT_STORM
    # Each answer reports the count including itself: 5,000 distinct values, 1 to 5,000,
    # so no two concurrent verifications read the same count (no lost update).
    counts = sorted(o.body["verification_count"] for o in outcomes if o.body)
    assert counts == list(range(1, COUNT_STORM + 1))
    row = platform.written_row(key_id)
    assert row["verification_count"] == COUNT_STORM
    assert row["last_verified_on"] is not None
    read = platform.call("GET", f"/api/v1/api_keys/{key_id}")
    assert read["api_key"]["verification_count"] == COUNT_STORM
    print(
        f"\ncount storm: {len(outcomes)} requests from {CLIENTS} clients, count {row['verification_count']}"
    )


class Switch:
    """A secret change made mid-storm by the main thread: what clients send before and
    after it, and the moment (monotonic) the change's HTTP response had been read."""

    def __init__(self, old: str) -> None:
        self.old = old
        self.new: str | None = None
        self.returned_at: float | None = None
        self._lock = threading.Lock()

    def choose(self, client: int, n: int) -> tuple[str, str]:
        with self._lock:
            new = self.new
        # Once the new secret is known, half the requests send the old one and half the new.
        if new is not None and (client + n) % 2:
            return "new", new
        return "old", self.old

    def done(self, new: str | None) -> None:
        import time

        with self._lock:
            self.new = new
            self.returned_at = time.monotonic()


def switch_mid_storm(platform: Platform, key: str, change: Any) -> tuple[list[Outcome], Switch]:
    """Run a storm on ``key``; when a third of it has answered, ``change()`` (which returns
    the new secret or None) runs on this thread while the clients keep verifying."""
    switch = Switch(key)
    storm = Storm(
        platform.service,
        total=SWITCH_STORM,
        clients=CLIENTS,
        tokens=platform.verifiers(STORM_APPLICATIONS),
        choose=switch.choose,
    ).start()
    storm.wait_until(SWITCH_STORM // 3)
    switch.done(change())
    return storm.join(), switch


def after(outcomes: list[Outcome], switch: Switch, label: str) -> list[Outcome]:
    assert switch.returned_at is not None
    return [o for o in outcomes if o.label == label and o.started > switch.returned_at]


def test_storm_sizes_keep_each_storm_application_under_the_failure_limit() -> None:
    """The arithmetic the switch storms rely on (see STORM_APPLICATIONS)."""
    per_client = -(-SWITCH_STORM // CLIENTS)
    assert (CLIENTS // STORM_APPLICATIONS) * per_client < FAILURE_LIMIT


def test_rotation_mid_storm_refuses_the_old_secret_at_once_and_accepts_the_new(
    platform: Platform,
) -> None:
    key_id, key = platform.issue_key("Rotated under load")

    def rotate() -> str:
        answer = platform.call("PUT", f"/api/v1/api_keys/{key_id}", {})
        assert answer["api_key"]["id"] == key_id
        return str(answer["api_key"]["key"])

    outcomes, switch = switch_mid_storm(platform, key, rotate)

    assert_every_request_answered(outcomes)
    old_after = after(outcomes, switch, "old")
    new = [o for o in outcomes if o.label == "new"]
    assert old_after and new, "the storm must straddle the rotation"
    assert {o.code for o in old_after} == {"API_KEY_INVALID"}
    assert not any(o.is_valid for o in old_after)
    assert all(o.is_valid for o in new)
    # Before the rotation returned, the old secret verified (the storm was running on it).
    assert any(o.is_valid for o in outcomes if o.label == "old" and o.ended < switch.returned_at)
    # Every success was counted, once, on the one row that both secrets name.
    assert platform.written_row(key_id)["verification_count"] == sum(o.is_valid for o in outcomes)
    print(
        f"\nrotate storm: {len(outcomes)} requests; after the rotation {len(old_after)} with the old "
        f"secret all refused, {len(new)} with the new all valid; count {sum(o.is_valid for o in outcomes)}"
    )


def test_rotation_with_a_grace_period_mid_storm_keeps_both_secrets_valid(
    platform: Platform,
) -> None:
    key_id, key = platform.issue_key("Rotated with grace under load")

    def rotate() -> str:
        answer = platform.call("PUT", f"/api/v1/api_keys/{key_id}", {"expire_previous_in": 3600})
        return str(answer["api_key"]["key"])

    outcomes, switch = switch_mid_storm(platform, key, rotate)

    assert_every_request_answered(outcomes)
    assert after(outcomes, switch, "old") and after(outcomes, switch, "new")
    assert all(o.is_valid for o in outcomes), {o.code for o in outcomes}
    assert platform.written_row(key_id)["verification_count"] == SWITCH_STORM
    print(f"\ngrace storm: {len(outcomes)} requests, all valid, count {SWITCH_STORM}")


def test_revocation_mid_storm_refuses_the_key_at_once_on_every_worker(platform: Platform) -> None:
    key_id, key = platform.issue_key("Revoked under load")

    def revoke() -> None:
        assert platform.call("DELETE", f"/api/v1/api_keys/{key_id}") == {
            "message": "Success",
            "code": "OK",
        }

    outcomes, switch = switch_mid_storm(platform, key, revoke)

    assert_every_request_answered(outcomes)
    refused = after(outcomes, switch, "old")
    assert refused, "the storm must straddle the revocation"
    assert {o.code for o in refused} == {"API_KEY_REVOKED"}
    assert all(
        o.body["key_id"] == key_id and o.body["status"] == "revoked" for o in refused if o.body
    )
    assert any(o.is_valid for o in outcomes if o.ended < switch.returned_at)
    row = platform.written_row(key_id)
    assert row["status"] == "revoked"
    assert row["verification_count"] == sum(o.is_valid for o in outcomes)
    print(
        f"\nrevoke storm: {len(outcomes)} requests; {len(refused)} after the revocation all "
        f"API_KEY_REVOKED; count {row['verification_count']}"
    )


def test_guessing_is_rate_limited_per_caller_under_load_while_valid_keys_verify(
    platform: Platform,
) -> None:
    _key_id, key = platform.issue_key("Verified while someone guesses")
    guesser, bystander = platform.verifiers(2)
    guesses = 3 * FAILURE_LIMIT

    def well_formed_guess() -> str:
        # Well-formed keys with a valid checksum: each one costs a database lookup.
        body = crypto.KEY_PREFIX + "".join(
            secrets.choice(crypto.ALPHABET) for _ in range(crypto.RANDOM_LENGTH)
        )
        return body + crypto.checksum(body)

    # Half the clients guess, the other half send the caller's valid key, all at once.
    guesses_and_valid = Storm(
        platform.service,
        total=2 * guesses,
        clients=CLIENTS,
        tokens=[guesser],
        choose=lambda c, n: ("wrong", well_formed_guess()) if c % 2 else ("valid", key),
    )
    outcomes = guesses_and_valid.start().join()

    wrong = [o for o in outcomes if o.label == "wrong"]
    valid = [o for o in outcomes if o.label == "valid"]
    assert all(o.status in (HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS) for o in outcomes)
    refused = [o for o in wrong if o.status == HTTPStatus.OK]
    limited = [o for o in wrong if o.status == HTTPStatus.TOO_MANY_REQUESTS]
    # Exactly FAILURE_LIMIT guesses got an answer; every one after that a 429 (one shared
    # counter for the four workers, so no worker lets its own FAILURE_LIMIT through).
    assert len(refused) == FAILURE_LIMIT
    assert {o.code for o in refused} == {"API_KEY_INVALID"}
    assert len(limited) == guesses - FAILURE_LIMIT
    assert {o.code for o in limited} == {"RATE_LIMITED"}
    for outcome in limited:
        retry_after = int(outcome.headers["retry-after"])
        assert 1 <= retry_after <= FAILURE_WINDOW
        assert outcome.headers["ratelimit-reset"] == outcome.headers["retry-after"]
    # The guesser's valid key never stopped verifying.
    assert valid and all(o.is_valid for o in valid)
    # Another caller is not punished for the guesser's failures.
    other = verify_once(platform.service.port, bystander, well_formed_guess(), 0, "wrong")
    assert (other.status, other.code) == (HTTPStatus.OK, "API_KEY_INVALID")
    print(
        f"\nlimiter storm: {len(wrong)} guesses -> {len(refused)} answered, {len(limited)} x 429; "
        f"{len(valid)} valid verifications all valid"
    )


LINK_ROUNDS = 8


def confirm_at_once(tabs: list[Browser], path: str) -> list[Any]:
    """Every tab POSTs the confirmation of ``path`` at the same moment."""
    start = threading.Barrier(len(tabs))
    answers: list[Any] = [None] * len(tabs)

    def confirm(n: int) -> None:
        start.wait(timeout=60)
        answers[n] = tabs[n].submit(path)

    threads = [threading.Thread(target=confirm, args=(n,)) for n in range(len(tabs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_a_portal_link_clicked_twice_at_once_signs_in_exactly_once(platform: Platform) -> None:
    """Two tabs (or a double click) confirm the same one-time link at the same moment, on
    different workers: one is signed in, the other is sent to the sign-in page."""
    user_id = platform.member("double-click@example.com")
    for _ in range(LINK_ROUNDS):
        path = platform.portal_link(user_id)
        tabs = [Browser(platform.service), Browser(platform.service)]
        for tab in tabs:
            assert tab.get(path).status_code == HTTPStatus.OK  # the confirmation page

        answers = confirm_at_once(tabs, path)

        assert all(a is not None and a.status_code == HTTPStatus.FOUND for a in answers)
        targets = sorted(a.headers["Location"] for a in answers)
        assert targets == ["/portal/keys/", "/portal/login/"], targets
        # Only the winner's session is signed in.
        signed_in = [tab.get("/portal/keys/").status_code == HTTPStatus.OK for tab in tabs]
        assert sorted(signed_in) == [False, True]
    used_links = platform.count("SELECT count(*) FROM portal_portallink WHERE used_at IS NOT NULL")
    used_events = platform.count(
        "SELECT count(*) FROM apikeys_auditevent WHERE action = 'portal_link.used'"
    )
    assert used_links == used_events == LINK_ROUNDS


GUESSERS = 32


def test_a_burst_of_concurrent_password_guesses_is_throttled_across_workers(
    platform: Platform,
) -> None:
    """32 wrong passwords for one account at the same moment, spread over the 4 workers,
    counted in the shared Redis: all but a handful are refused with 429 before the password
    is even checked, and the account is then locked even for the right password.

    How many guesses get their password checked: exactly the limit. The throttle counts an
    attempt with the cache's atomic increment before checking its password, so attempts in
    flight on other workers cannot slip past it.
    """
    from collections import Counter

    email = "guessed@example.com"
    platform.member(email)
    platform.set_password(email, "the-right-password-42")
    limit = 5  # PORTAL_LOGIN_MAX_FAILURES' default
    tabs = [Browser(platform.service) for _ in range(GUESSERS)]
    for tab in tabs:
        assert tab.get("/portal/login/").status_code == HTTPStatus.OK
    start = threading.Barrier(GUESSERS)
    answers: list[Any] = [None] * GUESSERS

    def guess(n: int) -> None:
        start.wait(timeout=60)
        answers[n] = tabs[n].submit("/portal/login/", {"username": email, "password": f"guess-{n}"})

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(GUESSERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) == {HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS}, statuses
    checked = statuses[HTTPStatus.OK]  # the form shown again: a password really checked
    assert checked == limit, statuses
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)
    # Locked: the right password is refused too, without being checked.
    late = Browser(platform.service)
    late.get("/portal/login/")
    refused = late.submit(
        "/portal/login/", {"username": email, "password": "the-right-password-42"}
    )
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "sessionid" not in late.session.cookies
    print(f"\npassword burst: {GUESSERS} guesses -> {checked} checked, {statuses[429]} x 429")
