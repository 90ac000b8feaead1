"""Fixtures of the correctness-under-concurrency tests: real databases shared by real
worker processes.

These tests do not use pytest-django's test database: several processes must see the same
committed data, as gunicorn workers do. Each backend gets its own throwaway database:

- ``postgresql``: a database of its own on the PostgreSQL server at 127.0.0.1:5432
  (``PERF_POSTGRES_URL`` to point elsewhere), whatever ``DATABASE_URL`` the suite runs on,
  so that the SQLite run of CI checks PostgreSQL's concurrency too;
- ``sqlite``: a file, the embedded default, shared by the same processes.

Each is migrated once per test session (and per xdist worker) and dropped at the end.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SERVER = os.environ.get("PERF_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
ANSWER_TIMEOUT = 120.0


def _env(database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.test_settings",
        "DATABASE_URL": database_url,
        # Keep connections between requests, as a production worker does.
        "CONN_MAX_AGE": "600",
        "PYTHONPATH": str(ROOT),
    }
    return env


def _migrate(database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=_env(database_url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def postgresql_database_url() -> Iterator[str]:
    import psycopg

    from tests.servers import require

    name = f"perf_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"
    try:
        server = psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        # A newcomer's machine with only Python: skipped with the reason; in CI, a failure.
        require(False, f"no PostgreSQL server at {POSTGRES_SERVER}")
    with server as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        _migrate(url)
        yield url
    finally:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('perf') / 'perf.sqlite3'}"
    _migrate(url)
    return url


class Worker:
    """One ``tests.performance.worker`` process: ``call({"op": …})`` answers a dict."""

    def __init__(self, database_url: str, *, cache_url: str | None = None) -> None:
        env = _env(database_url)
        if cache_url is not None:
            env["CACHE_URL"] = cache_url
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.performance.worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        ready = self.receive()
        self.vendor = ready["vendor"]

    def send(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], ANSWER_TIMEOUT)
        line = self.process.stdout.readline() if readable else ""
        if not line:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise AssertionError(f"worker gave no answer:\n{err[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"worker failed:\n{answer['error']}")
        return dict(answer)

    def call(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(op="close")
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Workers:
    """A controller (writes: setup, revoke, rotate) and ``count`` web workers (requests),
    all on one database, all holding a real M2M token."""

    def __init__(self, database_url: str, count: int) -> None:
        self.controller = Worker(database_url)
        self.web: list[Worker] = []
        try:
            self.web = [Worker(database_url) for _ in range(count)]
        except BaseException:
            self.close()
            raise

    def fresh_key(self) -> dict[str, Any]:
        """A new API, organization, key and M2M application; every worker gets a token."""
        made = self.controller.call(op="setup", tag=uuid.uuid4().hex[:12])
        for worker in [self.controller, *self.web]:
            worker.call(
                op="token", client_id=made["client_id"], client_secret=made["client_secret"]
            )
        return made

    def all_at_once(self, **cmd: Any) -> list[dict[str, Any]]:
        """Send ``cmd`` to every web worker before reading any answer, so they run together."""
        for worker in self.web:
            worker.send(**cmd)
        return [worker.receive() for worker in self.web]

    def close(self) -> None:
        for worker in [self.controller, *self.web]:
            worker.close()


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def workers(request: pytest.FixtureRequest) -> Iterator[Workers]:
    """Three web workers and a controller on PostgreSQL, then on SQLite."""
    url = request.getfixturevalue(f"{request.param}_database_url")
    pool = Workers(url, count=3)
    assert pool.controller.vendor == request.param
    try:
        yield pool
    finally:
        pool.close()
