"""The limits hold across gunicorn workers with the embedded default (issue 14, item 2):
SQLite and no CACHE_URL, the way `make run` and a first deployment run. Before, each worker
counted in its own local memory: 400 failed verifications from one application never met a
429, and a portal lockout held only on the worker that counted it.

The limiter counts in the database there (apikeys.ratelimit.DatabaseStorage), in sliding
windows, so the limit is the limit whichever worker answers.
"""

from __future__ import annotations

import threading
from collections import Counter
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Browser, Service, cluster, manage, production_env  # noqa: F401

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

WORKERS = 2


@pytest.fixture(params=["sqlite", "postgresql"])
def embedded(request: Any, tmp_path: Path):
    """gunicorn, 2 workers, with no Redis (the local-memory cache): on a fresh SQLite file,
    and on PostgreSQL (a throwaway cluster's fresh database), where the limiter's database
    storage serialises acquirers with an advisory lock instead of SQLite's write lock."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        database = request.getfixturevalue("cluster").fresh_database()
    env = production_env(DATABASE_URL=database)
    assert "CACHE_URL" not in env and "APIKEYS_RATELIMIT_STORAGE" not in env
    if request.param == "sqlite":
        manage(env, "migrate", "--noinput")
    service = Service(env=env, workers=WORKERS)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def test_the_301st_failed_verification_in_a_minute_is_a_429_across_workers(embedded) -> None:
    token = embedded.token(*embedded.m2m_app("verify:api_keys"))
    statuses = []
    for n in range(301):
        answer = embedded.request(
            "POST", "/api/v1/api_keys/verify", {"api_key": f"k_live_guess{n}"}, token=token
        )
        statuses.append(answer.status)
    assert statuses[:300] == [HTTPStatus.OK] * 300
    assert statuses[300] == HTTPStatus.TOO_MANY_REQUESTS
    assert int(answer.headers["retry-after"]) >= 1
    print(f"\nembedded default, {WORKERS} workers: 300 failures answered, the 301st: 429")


def make_user(service: Service, email: str) -> None:
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_user(username={email!r}, email={email!r}, "
        "password='the-right-password-42')\n"
    )
    manage(service.env, "shell", "-c", code)


def test_a_portal_lockout_holds_across_workers(embedded) -> None:
    email = "locked@example.com"
    make_user(embedded, email)
    statuses = []
    for n in range(5):  # PORTAL_LOGIN_MAX_FAILURES' default; a fresh connection each time
        tab = Browser(embedded)
        tab.get("/portal/login/")
        statuses.append(
            tab.submit("/portal/login/", {"username": email, "password": f"guess-{n}"}).status_code
        )
    assert statuses == [HTTPStatus.OK] * 5
    refused = []
    for _ in range(2 * WORKERS):
        tab = Browser(embedded)
        tab.get("/portal/login/")
        answer = tab.submit(
            "/portal/login/", {"username": email, "password": "the-right-password-42"}
        )
        refused.append(answer.status_code)
        assert "sessionid" not in tab.session.cookies
    assert refused == [HTTPStatus.TOO_MANY_REQUESTS] * (2 * WORKERS)


def test_a_burst_of_simultaneous_guesses_gets_exactly_the_limit_checked(embedded) -> None:
    """24 wrong passwords for one account at the same moment, over both workers: the pair's
    count is taken before the password check, atomically in the database, so exactly 5
    (PORTAL_LOGIN_MAX_FAILURES) reach the check and the rest are 429."""
    email = "burst@example.com"
    make_user(embedded, email)
    guessers = 24
    tabs = [Browser(embedded) for _ in range(guessers)]
    for tab in tabs:
        tab.get("/portal/login/")
    start = threading.Barrier(guessers)
    answers: list[Any] = [None] * guessers

    def guess(n: int) -> None:
        start.wait(timeout=60)
        answers[n] = tabs[n].submit("/portal/login/", {"username": email, "password": f"g{n}"})

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guessers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {HTTPStatus.OK: 5, HTTPStatus.TOO_MANY_REQUESTS: guessers - 5}, statuses
    print(f"\nburst on the embedded default: {guessers} guesses -> {statuses[200]} checked")
