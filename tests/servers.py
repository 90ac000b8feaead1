"""Throwaway servers for the reliability and security tests: PostgreSQL, Redis and gunicorn.

Every server here is started by the test run itself, on loopback, on a free port, with its
data in a temporary directory, and stopped by it. The shared PostgreSQL (5432) and Redis
(6379) of the machine are never touched: a fault test may stop *these* servers at will.

So the tests that use them do not depend on ``DATABASE_URL``/``CACHE_URL`` and run the same
on the SQLite and the PostgreSQL pass of CI. They need PostgreSQL's server binaries
(``initdb``, ``pg_ctl``: Debian's ``postgresql`` package; ``PG_BIN`` overrides where they
are looked for) and ``redis-server``. Without them the tests are skipped with the reason,
except in CI (``CI`` set), where a missing server is a failure: CI must run them.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"

# Ceilings for waiting on a server to come up or go down. They bound a broken run; a
# healthy one is far quicker. Tests never assert on elapsed time.
START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0


def require(condition: bool, reason: str) -> None:
    """Skip outside CI when a server binary is missing; fail in CI, which must run these."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must run the server tests.")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port free on loopback right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, *, timeout: float = START_TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"Timed out waiting for {what}")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: ``PG_BIN``, the PATH, or Debian's layout."""
    candidates = [os.environ.get("PG_BIN", "")]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (
            candidate
            and (Path(candidate) / "initdb").exists()
            and (Path(candidate) / "pg_ctl").exists()
        ):
            return Path(candidate)
    return None


class PostgresServer:
    """A PostgreSQL cluster of its own: ``initdb`` into a temporary directory, another port.

    Durability is traded for speed (``fsync=off``): the data is thrown away after the run.
    As root, the server runs as the ``postgres`` system user (PostgreSQL refuses root).
    """

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        require(
            bin_dir is not None, "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        )
        assert bin_dir is not None
        self.bin_dir = bin_dir
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="apikeys-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # the Debian package's system user
            shutil.chown(self.base, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )

    def _run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *args],
            check=True,
            capture_output=True,
            text=True,
            cwd=self.base,
            **kwargs,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -k {self.base} -c fsync=off "
            "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB"
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(START_TIMEOUT)),
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clients disconnected) or ``immediate`` (a crash)."""
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and port_open(self.port)

    def url(self, database: str) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(
            host=HOST, port=self.port, user="postgres", dbname=database, **kwargs
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.connect(autocommit=True) as conn:
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A redis-server of its own on another port, without persistence."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        require(self.binary is not None, "redis-server is not installed")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), what="redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"


# --------------------------------------------------------------------------- the service


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production deployment (DEBUG off, real secrets), on loopback."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST_", "DATABASE_", "CACHE_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "APIKEYS_HASHING_SECRET": secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": f"{HOST},localhost",
            # Plain HTTP on loopback: no TLS proxy in front of the test server.
            "SECURE_COOKIES": "false",
            "LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


_static_root: Path | None = None


def collected_static_root() -> Path:
    """A STATIC_ROOT that ``collectstatic`` filled, once per test process: the production
    settings serve static files through WhiteNoise from the manifest it writes."""
    global _static_root
    if _static_root is None:
        root = Path(tempfile.mkdtemp(prefix="apikeys-static-"))
        manage(production_env(STATIC_ROOT=str(root)), "collectstatic", "--noinput", "-v0")
        _static_root = root
    return _static_root


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; its standard output."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    """The project served by gunicorn with several workers, and its captured log."""

    env: dict[str, str]
    workers: int = 4
    access_log: bool = True
    port: int = field(default_factory=free_port)
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="apikeys-gunicorn-", suffix=".log")[1])
    )
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.env.setdefault("STATIC_ROOT", str(collected_static_root()))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "project.wsgi",
                "--workers",
                str(self.workers),
                "--bind",
                f"{HOST}:{self.port}",
                *(["--access-logfile", "-"] if self.access_log else []),
                "--error-logfile",
                "-",
                "--log-level",
                "debug",
                "--graceful-timeout",
                "5",
                "--timeout",
                "120",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self._answers(), what="gunicorn")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log_text()[-4000:]}")
        if not port_open(self.port):
            return False
        try:
            return self.request("GET", "/api/schema/").status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master this test started)."""
        assert self.process is not None
        master = self.process.pid
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # Field 4 of /proc/PID/stat is the parent's pid (after the parenthesised name).
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == master and fields[0] != "Z":
                    pids.append(int(stat.parent.name))
        return sorted(pids)

    def kill_workers(self) -> list[int]:
        """SIGKILL every worker (the master, ours, starts new ones): a crash mid-request."""
        pids = self.worker_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def wait_for_workers(self) -> None:
        wait_for(lambda: len(self.worker_pids()) == self.workers, what="gunicorn workers")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Response:
        """One HTTP request on a fresh connection (gunicorn's sync workers close each one)."""
        sent = dict(headers or {})
        payload: bytes | None = None
        if form is not None:
            from urllib.parse import urlencode

            payload = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=payload, headers=sent)
            answer = connection.getresponse()
            return Response(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            )
        finally:
            connection.close()

    # ----------------------------------------------------------------- the Management API

    def m2m_app(self, *scopes: str, name: str = "Reliability test service") -> tuple[str, str]:
        """``createm2mapp`` as an operator would run it: (client_id, client_secret)."""
        args = ["createm2mapp", name]
        for scope in scopes:
            args += ["--scope", scope]
        created = json.loads(manage(self.env, *args))
        return created["client_id"], created["client_secret"]

    def m2m_apps(self, count: int, *scopes: str, name: str = "Verifier") -> list[tuple[str, str]]:
        """``count`` applications at once, through the same service ``createm2mapp`` calls,
        in one process (a process per application would cost a Django start-up each)."""
        code = (
            "import json\n"
            "from apikeys import services\n"
            "made = [services.m2m_application_create(name=f'{name} {n}', scopes=scopes, "
            "actor=services.Actor.system()) for n in range(count)]\n"
            "print(json.dumps([[m.application.client_id, m.client_secret] for m in made]))\n"
        )
        prelude = f"name, scopes, count = {name!r}, {list(scopes)!r}, {count}\n"
        # The JSON is the last line (Django's shell may print a banner before it).
        printed = manage(self.env, "shell", "-c", prelude + code).strip().splitlines()[-1]
        return [(str(pair[0]), str(pair[1])) for pair in json.loads(printed)]

    def token(self, client_id: str, client_secret: str) -> str:
        answer = self.request(
            "POST",
            "/oauth2/token",
            form={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        assert answer.status == 200, answer.body
        return str(answer.json()["access_token"])


class Browser:
    """A cookie-keeping client for the service's HTML pages (portal, admin): it sends the
    CSRF token of the page it last read back with its next form, as a browser would."""

    CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

    def __init__(self, service: Service) -> None:
        import requests

        self.base = f"http://{HOST}:{service.port}"
        self.session = requests.Session()
        self.page = ""

    def get(self, path: str) -> Any:
        response = self.session.get(
            self.base + path, allow_redirects=False, timeout=REQUEST_TIMEOUT
        )
        self.page = response.text
        return response

    def submit(self, path: str, data: dict[str, Any] | None = None) -> Any:
        """POST a form of the page last read (its CSRF token included)."""
        match = self.CSRF_FIELD.search(self.page)
        fields = {**(data or {}), **({"csrfmiddlewaretoken": match.group(1)} if match else {})}
        response = self.session.post(
            self.base + path, data=fields, allow_redirects=False, timeout=REQUEST_TIMEOUT
        )
        self.page = response.text
        return response


@contextlib.contextmanager
def running_service(**env: str) -> Iterator[Service]:
    service = Service(env=production_env(**env))
    service.start()
    try:
        yield service
    finally:
        service.stop()


class Cluster:
    """One throwaway PostgreSQL for a test session, with a migrated template database:
    each test that needs a clean database copies it in a fraction of a second."""

    TEMPLATE = "apikeys_template"

    def __init__(self) -> None:
        self.postgres = PostgresServer()
        self.postgres.start()
        self.postgres.create_database(self.TEMPLATE)
        manage(
            production_env(DATABASE_URL=self.postgres.url(self.TEMPLATE)), "migrate", "--noinput"
        )
        self._count = 0

    def fresh_database(self) -> str:
        """A new database with every migration applied; its URL."""
        self._count += 1
        name = f"apikeys_{os.getpid()}_{self._count}"
        self.postgres.create_database(name, template=self.TEMPLATE)
        return self.postgres.url(name)

    def destroy(self) -> None:
        self.postgres.destroy()


_shared_cluster: Cluster | None = None


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL per test session (per xdist worker). Import this fixture
    into a conftest to use it; conftests of several folders share the one cluster."""
    global _shared_cluster
    if _shared_cluster is None:
        _shared_cluster = Cluster()
    yield _shared_cluster
    if _shared_cluster is not None:
        _shared_cluster.destroy()
        _shared_cluster = None
