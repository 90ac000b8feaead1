"""``make bench``: the project under gunicorn on PostgreSQL and Redis, loaded by wrk.

Run it as ``python -m tests.benchmarks.run`` from the repository root (``make bench`` does).
It creates its own database (``bench``, dropped at the end), loads data through the real
services and :mod:`apikeys.bulk`, starts gunicorn (2 sync workers, DEBUG off) with
``tests.benchmarks.settings`` (the project's settings plus a bare DRF floor view), and
measures side by side, in interleaved rounds so that a change of background load hits every
endpoint alike:

- ``floor``: a bare DRF endpoint of the same project (no authentication, no query);
- ``verify``: ``POST /api/v1/api_keys/verify`` with a real M2M token, cycling through 1,000
  valid keys, and the same with one hot key (every request updates the same row);
- ``example``: ``GET /example/users``, the in-process DRF authentication with API keys.

Then, in-process: queries per request, ``api_key_verify`` medians at 1,000 and 1,000,000
keys, list pages at 1,000,000 keys, admin and portal query counts at 10 and 10,000 keys.
It prints a table and writes the same as JSON (``artifacts/bench.json``). Figures, never
pass/fail: the targets of issue 16 are printed beside them, met or missed, with the
PostgreSQL rows updated and transactions committed per request at steady load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Issue 16's targets (the list figure is issue 7's).
TARGETS = {
    "verify_vs_floor": 0.5,
    "example_vs_floor": 0.6,
    "verify_median_us_pg": 120.0,
    # Issue 17: a verification of a key with both usage limits, against one without.
    "limited_verify_ratio": 1.10,
    # Issue 17: verify of a key with both limits within 10% of an unlimited key's throughput.
    "limited_throughput_ratio": 0.90,
    "scale_ratio": 1.15,
    "list_median_ms": 25.0,
    "worker_rss_mb": 100.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (no database name); the bench creates its own database",
    )
    parser.add_argument("--db-name", default="bench")
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/5")
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per endpoint")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--scale", type=int, default=1_000_000, help="keys for the scale figures (0: skip)"
    )
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "bench.json"))
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    return parser.parse_args(argv)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- database


def _admin_connect(pg: str) -> Any:
    import psycopg

    return psycopg.connect(f"{pg}/postgres", autocommit=True)


def create_database(pg: str, name: str) -> None:
    with _admin_connect(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(pg: str, name: str) -> None:
    with _admin_connect(pg) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=3).ping()


# --------------------------------------------------------------------------- gunicorn and wrk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """gunicorn with 2 sync workers on a loopback port, the project's WSGI application."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        # Kept after the run (delete=False): where to look when gunicorn does not start.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (open for gunicorn's lifetime)
            "w+", prefix="bench-gunicorn-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "project.wsgi",
                "--workers",
                "2",
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(ROOT),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/bench/floor", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start; see {self.log.name}")
            time.sleep(0.3)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def worker_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        return sizes

    def token(self, client_id: str, client_secret: str) -> str:
        body = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
        ).encode()
        with urllib.request.urlopen(f"{self.base}/oauth2/token", data=body, timeout=10) as response:
            return str(json.loads(response.read())["access_token"])

    def stop(self) -> None:
        if self.process.poll() is None:
            # Only the gunicorn this script started (its own session): master and workers.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (from /proc, in seconds)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def database_backends(db_name: str) -> list[int]:
    """PostgreSQL backends serving ``db_name``, except this script's own connection: with
    persistent connections, those of the gunicorn workers."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db_name],
        )
        return [row[0] for row in cursor.fetchall()]


def database_writes(db_name: str) -> tuple[int, int]:
    """``pg_stat_database``'s rows updated and transactions committed so far in ``db_name``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT tup_updated, xact_commit FROM pg_stat_database WHERE datname = %s",
            [db_name],
        )
        updated, commits = cursor.fetchone()
    return int(updated), int(commits)


def run_measured(server: Server, url: str, *, db_name: str, **wrk: Any) -> dict[str, Any]:
    """One wrk run, plus the CPU time the workers and their database backends spent per
    request: a cost that, unlike requests/s, hardly depends on what else the machine runs."""
    workers, backends = server.worker_pids(), database_backends(db_name)
    before_w, before_b = cpu_seconds(workers), cpu_seconds(backends)
    before_pg = database_writes(db_name)
    result = run_wrk(url, **wrk)
    spent_w, spent_b = cpu_seconds(workers) - before_w, cpu_seconds(backends) - before_b
    requests = max(result["requests"], 1)
    # PostgreSQL's own statistics of the run: rows updated and transactions committed per
    # request (with Redis, verification counts reach the rows once per key per write-back).
    time.sleep(1.2)  # backends report their statistics at most once a second
    after_pg = database_writes(db_name)
    result["pg_rows_updated"] = after_pg[0] - before_pg[0]
    result["pg_commits"] = after_pg[1] - before_pg[1]
    result["worker_cpu_us"] = round(spent_w / requests * 1e6)
    result["database_cpu_us"] = round(spent_b / requests * 1e6)
    return result


def run_wrk(
    url: str, *, duration: float, connections: int, threads: int, env: dict[str, str]
) -> dict[str, Any]:
    """One bounded wrk run; its figures from the ``BENCH_RESULT`` line of wrk.lua."""
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "wrk.lua"),
        url,
    ]
    done = subprocess.run(
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
            return result
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


# --------------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make bench` installs Debian's wrk (apt-get install wrk).")
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_start": load_average(),
        },
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "threads": args.threads,
            "gunicorn": "2 sync workers",
            "scale_keys": args.scale,
        },
    }
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.benchmarks.settings",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "CACHE_URL": args.redis,
        "CONN_MAX_AGE": "600",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "APIKEYS_HASHING_SECRET": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    check_redis(args.redis)
    print(
        f"== bench database {args.db_name!r} on {args.pg}; load average {report['machine']['load_average_start']}",
        flush=True,
    )
    create_database(args.pg, args.db_name)
    try:
        _run(args, env, report)
    finally:
        from django.db import connections

        from apikeys import keycache

        # This process's write-back thread (the in-process figures started it): stopped
        # before its database is dropped under it.
        state = keycache._process
        if state is not None:
            state.stop_writer.set()
            if state.writer is not None:
                state.writer.join(timeout=10)
        connections.close_all()
        if not args.keep:
            drop_database(args.pg, args.db_name)
    report["machine"]["load_average_end"] = load_average()
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    print_report(report)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path} in {report['elapsed_s']} s")
    return 0


def redis_round_trip_us(url: str, calls: int = 3000) -> float:
    """Median of one PING on a raw socket to Redis: the floor under any Redis command."""
    parsed = urllib.parse.urlparse(url)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            sock.recv(64)
            samples.append(time.perf_counter_ns() - start)
    return round(statistics.median(samples) / 1000, 1)


def _run(args: argparse.Namespace, env: dict[str, str], report: dict[str, Any]) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tests.benchmarks import common

    call_command("migrate", verbosity=0)
    report["machine"]["postgresql"] = connection.pg_version
    from apikeys import conf

    report["write_back_interval_s"] = conf.get("COUNTS_WRITE_BACK_INTERVAL")
    report["redis_round_trip_us"] = redis_round_trip_us(args.redis)
    data = common.load_base()

    # ---- 10 keys: the admin and portal lists' query counts.
    common.add_keys(data, 10)
    report["lists_at_10"] = list_query_counts(data)

    # ---- 1,000 keys: query counts, in-process verify, and the HTTP runs.
    sample = common.add_keys(data, 990, sample=990)
    keys = sample[:990]
    report["verify_keys"] = len(keys)
    print("== 1,000 keys loaded; in-process figures", flush=True)
    probes = http_probes(data, keys)
    report["queries_per_request"] = {
        name: common.queries_per_request(client, probe) for name, (client, probe) in probes.items()
    }
    # Django's CONN_HEALTH_CHECKS sends a "SELECT 1" before the first query of each request,
    # on the raw connection, where query counting does not see it: a round trip all the same.
    health_check = bool(connection.settings_dict.get("CONN_HEALTH_CHECKS"))
    report["round_trips_per_request"] = {
        name: count + (1 if health_check and count else 0)
        for name, count in report["queries_per_request"].items()
    }
    report["inprocess_request_ms"] = {
        name: common.request_median_ms(client, probe, calls=300)
        for name, (client, probe) in probes.items()
    }
    report["inprocess_cpu"] = {
        name: common.cpu_breakdown(client, probe)
        for name, (client, probe) in probes.items()
        if name in ("floor", "verify", "example")
    }
    # Measured on the freshly loaded table, vacuumed as autovacuum would, like the figure at
    # scale below: after the HTTP runs, these keys' rows carry thousands of dead versions.
    vacuum_analyze()
    report["verify_inprocess_1k"] = common.verify_median_us(keys)
    report["verify_inprocess_1k"]["load_average"] = load_average()
    # A key with both usage limits against one without, in process (target: within 10%).
    # 6,000 more verifications on two keys, each at most 10,000 in any second.
    report["verify_limited_vs_unlimited"] = common.limited_vs_unlimited_us(data)
    report["token_endpoint"] = common.token_endpoint_costs(data)
    from apikeys import services

    # Issue 17's throughput target: one hot key with both limits (too large to refuse at
    # this machine's rate) against the hot key without, through the verify endpoint.
    limited_key = services.api_key_issue(
        name="Bench hot, limited",
        api=data.api,
        organization=data.organization,
        ratelimit={"limit": 10_000, "duration": 1},
        credits={"remaining": 1_000_000_000},
        actor=services.Actor.system(),
    ).plaintext
    report["http"] = http_runs(args, env, data, keys, limited_key)

    # ---- 10,000 keys: the admin and portal lists again.
    common.add_keys(data, 9_000)
    report["lists_at_10000"] = list_query_counts(data)

    # ---- the scale figures.
    if args.scale > 10_000:
        print(f"== loading {args.scale:,} keys in all", flush=True)
        start = time.monotonic()
        big_sample = common.add_keys(data, args.scale - 10_000, sample=1000)
        load_s = time.monotonic() - start
        vacuum_analyze()
        report["scale"] = {
            "keys": args.scale,
            "load_s": round(load_s, 1),
            "load_keys_per_s": round((args.scale - 10_000) / load_s),
            "verify_inprocess": common.verify_median_us(big_sample),
            **list_medians(data),
        }
        report["scale"]["verify_inprocess"]["load_average"] = load_average()
        # The 1,000-key median again, now that the table is large, from the same keys.
        report["scale"]["verify_inprocess_first_1k_keys"] = common.verify_median_us(keys)


def vacuum_analyze() -> None:
    """What autovacuum does after a large load or many updates, done now so that the
    figures do not depend on when it happens to run."""
    from django.db import DatabaseError, connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) apikeys_apikey")
        cursor.execute("VACUUM (ANALYZE) apikeys_apikey_scopes")
        # A million rows leave a gigabyte of WAL behind, and a checkpoint writing it out for
        # the next minutes: measured, that alone made verification look 30% slower at
        # scale. Finish it now (it needs a superuser or pg_checkpoint; else skip it).
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass


def http_probes(data: Any, keys: list[str]) -> dict[str, tuple[Any, Any]]:
    from django.test import Client

    from tests.benchmarks import common

    token = common.token_client(data)
    return {
        "floor": (Client(), common.Probe("GET", "/bench/floor")),
        "verify": (
            token,
            common.Probe("POST", "/api/v1/api_keys/verify", json.dumps({"api_key": keys[0]})),
        ),
        "example": (
            Client(),
            common.Probe(
                "GET", "/example/users", headers={"HTTP_AUTHORIZATION": f"Bearer {keys[0]}"}
            ),
        ),
        "whatif_verify_lean_token": (
            token,
            common.Probe("POST", "/bench/whatif/verify", json.dumps({"api_key": keys[0]})),
        ),
    }


def http_runs(
    args: argparse.Namespace, env: dict[str, str], data: Any, keys: list[str], limited_key: str
) -> dict[str, Any]:
    from tests.benchmarks import common

    server = Server({**os.environ, **env})
    try:
        token = server.token(data.client_id, data.client_secret)
        with tempfile.NamedTemporaryFile(
            "w", prefix="bench-keys-", suffix=".txt", delete=False
        ) as keys_file:
            keys_file.write("\n".join(keys) + "\n")
        with tempfile.NamedTemporaryFile(
            "w", prefix="bench-hot-", suffix=".txt", delete=False
        ) as hot_file:
            hot_file.write(keys[-1] + "\n")
        with tempfile.NamedTemporaryFile(
            "w", prefix="bench-limited-", suffix=".txt", delete=False
        ) as limited_file:
            limited_file.write(limited_key + "\n")
        scenarios = {
            "floor": ("/bench/floor", {"BENCH_METHOD": "GET", "BENCH_AUTH": "", "BENCH_KEYS": ""}),
            "verify": (
                "/api/v1/api_keys/verify",
                {
                    "BENCH_METHOD": "POST",
                    "BENCH_AUTH": f"Bearer {token}",
                    "BENCH_KEYS": keys_file.name,
                },
            ),
            "verify_hot_key": (
                "/api/v1/api_keys/verify",
                {
                    "BENCH_METHOD": "POST",
                    "BENCH_AUTH": f"Bearer {token}",
                    "BENCH_KEYS": hot_file.name,
                },
            ),
            "verify_hot_limited_key": (
                "/api/v1/api_keys/verify",
                {
                    "BENCH_METHOD": "POST",
                    "BENCH_AUTH": f"Bearer {token}",
                    "BENCH_KEYS": limited_file.name,
                },
            ),
            "example": (
                "/example/users",
                {"BENCH_METHOD": "GET", "BENCH_AUTH": "key", "BENCH_KEYS": keys_file.name},
            ),
            # Not the product: the prototype of whatif.py, to measure what would close the gap.
            "whatif_verify_lean_token": (
                "/bench/whatif/verify",
                {
                    "BENCH_METHOD": "POST",
                    "BENCH_AUTH": f"Bearer {token}",
                    "BENCH_KEYS": keys_file.name,
                },
            ),
        }
        counted_before = common.total_verifications()
        print("== warming up", flush=True)
        for path, wrk_env in scenarios.values():
            run_wrk(
                server.base + path,
                duration=1,
                connections=args.connections,
                threads=args.threads,
                env=wrk_env,
            )
        from apikeys import keycache

        keycache.write_back()
        counted_after_warmup = common.total_verifications()
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for number in range(args.rounds):
            print(
                f"== round {number + 1}/{args.rounds} (load average {load_average()})", flush=True
            )
            for name, (path, wrk_env) in scenarios.items():
                rounds[name].append(
                    run_measured(
                        server,
                        server.base + path,
                        db_name=args.db_name,
                        duration=args.duration,
                        connections=args.connections,
                        threads=args.threads,
                        env=wrk_env,
                    )
                )
        rss = server.worker_rss_mb()
    finally:
        server.stop()
        for name in ("keys_file", "hot_file", "limited_file"):
            if name in locals():
                Path(locals()[name].name).unlink(missing_ok=True)
    from apikeys import keycache

    keycache.write_back()  # the counts still in Redis, if any, before the database's sum
    counted = common.total_verifications() - counted_after_warmup
    result: dict[str, Any] = {"worker_rss_mb": rss, "endpoints": {}}
    for name, runs in rounds.items():
        errors = sum(
            r["connect_errors"]
            + r["read_errors"]
            + r["write_errors"]
            + r["status_errors"]
            + r["timeouts"]
            for r in runs
        )
        result["endpoints"][name] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": round(statistics.median(r["p50_us"] for r in runs) / 1000, 2),
            "p99_ms": round(statistics.median(r["p99_us"] for r in runs) / 1000, 2),
            "errors": errors,
            "rounds_rps": [r["rps"] for r in runs],
            "worker_cpu_us": statistics.median(r["worker_cpu_us"] for r in runs),
            "database_cpu_us": statistics.median(r["database_cpu_us"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "pg_rows_updated_per_request": round(
                sum(r["pg_rows_updated"] for r in runs) / max(sum(r["requests"] for r in runs), 1),
                4,
            ),
            "pg_commits_per_request": round(
                sum(r["pg_commits"] for r in runs) / max(sum(r["requests"] for r in runs), 1), 4
            ),
        }
    floor = result["endpoints"]["floor"]["rps"]
    floor_cpu = (
        result["endpoints"]["floor"]["worker_cpu_us"]
        + result["endpoints"]["floor"]["database_cpu_us"]
    )
    for figures in result["endpoints"].values():
        figures["vs_floor"] = round(figures["rps"] / floor, 3) if floor else None
        # Throughput is bounded by the CPU each request takes (workers and database share
        # the two cores): the floor's CPU per request over this one's is the ratio an idle
        # machine would show, whatever else ran during this run.
        cpu = figures["worker_cpu_us"] + figures["database_cpu_us"]
        figures["cpu_vs_floor"] = round(floor_cpu / cpu, 3) if cpu else None
    verifying = sum(result["endpoints"][n]["requests"] for n in scenarios if n != "floor")
    result["count_check"] = {
        "requests_completed_by_wrk": verifying,
        "verifications_counted_in_database": counted,
        "warmup_counted": counted_after_warmup - counted_before,
    }
    return result


def list_query_counts(data: Any) -> dict[str, Any]:
    """Statements of the admin's and the portal's key lists, and of the API's list."""
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from apikeys.models import ApiKey
    from tests.benchmarks import common

    counts: dict[str, Any] = {"keys_in_table": ApiKey.objects.count()}
    admin = Client()
    admin.force_login(data.superuser)
    portal = Client()
    portal.force_login(data.portal_user)
    pages: dict[str, tuple[Any, str | None]] = {}
    try:
        pages["admin_key_list"] = (admin, reverse("admin:apikeys_apikey_changelist"))
    except NoReverseMatch:
        pages["admin_key_list"] = (admin, None)
    try:
        pages["portal_user_key_list"] = (portal, reverse("portal:user-keys"))
        pages["portal_org_key_list"] = (
            portal,
            reverse("portal:org-keys", kwargs={"org_code": data.organization.code}),
        )
    except NoReverseMatch:
        pages["portal_user_key_list"] = (portal, None)
    pages["api_key_list"] = (common.token_client(data), "/api/v1/api_keys?page_size=50")
    for name, (client, path) in pages.items():
        if path is None:
            counts[name] = "not present"
            continue
        try:
            counts[name] = common.queries_per_request(client, common.Probe("GET", path))
        except AssertionError as exc:
            counts[name] = f"not measured: {exc}"[:200]
    counts["visible_in_portal_user_list"] = ApiKey.objects.filter(user=data.portal_user).count()
    counts["visible_in_portal_org_list"] = ApiKey.objects.filter(
        organization=data.organization
    ).count()
    return counts


def list_medians(data: Any) -> dict[str, Any]:
    """The Management API's key list at scale: first page, a page deep in the cursor."""
    from apikeys.models import ApiKey
    from tests.benchmarks import common

    client = common.token_client(data)
    total = ApiKey.objects.count()
    deep_cursor = ApiKey.objects.order_by("-id").values_list("id", flat=True)[total // 2]
    probes = {
        "list_first_page": common.Probe("GET", "/api/v1/api_keys?page_size=50"),
        "list_deep_page": common.Probe(
            "GET", f"/api/v1/api_keys?page_size=50&starting_after={deep_cursor}"
        ),
        "list_org_deep_page": common.Probe(
            "GET",
            f"/api/v1/api_keys?page_size=50&org_code={data.organization.code}&starting_after={deep_cursor}",
        ),
    }
    result: dict[str, Any] = {}
    for name, probe in probes.items():
        result[name] = {
            "median_ms": common.request_median_ms(client, probe),
            "queries": common.queries_per_request(client, probe),
        }
    return result


# --------------------------------------------------------------------------- report


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _write_bound(report: dict[str, Any], endpoint: dict[str, Any]) -> float | None:
    """Row updates per request when every key verified in a write-back interval is written
    once per interval: min(1, keys in rotation / requests per interval)."""
    interval, keys = report.get("write_back_interval_s"), report.get("verify_keys")
    if not interval or not keys or not endpoint.get("rps"):
        return None
    return float(min(1.0, keys / (endpoint["rps"] * interval)))


def _why_missed(report: dict[str, Any], targets: dict[str, bool | None]) -> dict[str, list[str]]:
    """For each missed target: by how much, and where the time goes (measured)."""
    endpoints = report.get("http", {}).get("endpoints", {})
    cpu = report.get("inprocess_cpu", {})
    floor_cpu = cpu.get("floor", {}).get("request_us")
    out: dict[str, list[str]] = {}
    for name, target_key, endpoint, parts in (
        ("verify >= 0.5 x floor", "verify_vs_floor", "verify", "token check + key"),
        (
            "example (in-process key auth) >= 0.6 x floor",
            "example_vs_floor",
            "example",
            "key",
        ),
    ):
        e = endpoints.get(endpoint)
        if targets.get(name) is not False or not e:
            continue
        target = TARGETS[target_key]
        floor = endpoints["floor"]
        allowed = floor["worker_cpu_us"] / target
        lines = [
            (
                f"{e['vs_floor']:.2f} x in throughput ({e['cpu_vs_floor']:.2f} x in CPU per request): "
                f"{e['worker_cpu_us']} µs of worker CPU per request where {allowed:.0f} µs would meet "
                f"{target} x ({e['worker_cpu_us'] - allowed:+.0f} µs)"
            )
        ]
        c = cpu.get(endpoint)
        if c and floor_cpu:
            over = c["request_us"] - floor_cpu
            lines.append(
                f"in process: {over:.0f} µs over the floor's {floor_cpu:.0f} µs, of which "
                f"{parts} {c['token_us'] + c['key_us']:.0f} µs (its Redis round trips "
                f"{c['redis_us']:.0f} µs of CPU: socket calls and parsing) and the view's own "
                f"work (authentication and permission classes, body, answer) "
                f"{over - c['token_us'] - c['key_us']:.0f} µs"
            )
        out[name] = lines
    v1k = report.get("verify_inprocess_1k", {})
    for field, name in (
        ("median_us", "in-process verify median <= 120 µs (warm key, as configured)"),
        (
            "median_us_prepared",
            "in-process verify median <= 120 µs (warm key, prepared statements)",
        ),
    ):
        if targets.get(name) is False and field in v1k:
            rtt = report.get("redis_round_trip_us")
            out[name] = [
                f"{v1k[field]} µs, {v1k[field] - TARGETS['verify_median_us_pg']:+.1f} µs"
                + (
                    f"; one Redis round trip alone (PING on a raw socket, median) takes "
                    f"{rtt} µs on this machine"
                    if rtt
                    else ""
                )
            ]
    rss = report.get("http", {}).get("worker_rss_mb", [])
    if targets.get("worker RSS <= 100 MB") is False and rss:
        out["worker RSS <= 100 MB"] = [
            f"{max(rss)} MB, {max(rss) - TARGETS['worker_rss_mb']:+.1f} MB"
        ]
    return out


def print_report(report: dict[str, Any]) -> None:
    http = report.get("http", {})
    endpoints = http.get("endpoints", {})
    queries = report.get("queries_per_request", {})
    labels = {
        "floor": "floor: bare DRF view",
        "verify": "verify endpoint, M2M token, 1,000 keys",
        "verify_hot_key": "verify endpoint, one hot key",
        "verify_hot_limited_key": "verify endpoint, hot key with both limits",
        "example": "example API, in-process key auth",
        "whatif_verify_lean_token": "(what-if) verify, lean token check",
    }
    print()
    print(
        f"{'endpoint':42} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x floor':>7} "
        f"{'cpu µs':>7} {'db µs':>6} {'x floor':>7} {'queries':>7} {'trips':>5} {'errors':>6}"
    )
    for name, label in labels.items():
        e = endpoints.get(name)
        if not e:
            continue
        q = queries.get("verify" if name == "verify_hot_key" else name, "")
        trips = report.get("round_trips_per_request", {}).get(
            "verify" if name == "verify_hot_key" else name, ""
        )
        print(
            f"{label:42} {e['rps']:7.0f} {e['p50_ms']:7.2f} {e['p99_ms']:7.2f} {e['vs_floor']:7.2f} "
            f"{e['worker_cpu_us']:7} {e['database_cpu_us']:6} {e['cpu_vs_floor']:7.2f} {q!s:>7} {trips!s:>5} {e['errors']:6}"
        )
    print(
        "(cpu µs, db µs: CPU time per request of the gunicorn workers and of their PostgreSQL backends;\n"
        " the second x floor is the floor's CPU per request over this one's: the throughput ratio\n"
        " of an otherwise idle machine; trips: database round trips, queries plus the health check\n"
        " that CONN_HEALTH_CHECKS sends before the first query of a request)"
    )
    cpu = report.get("inprocess_cpu", {})
    if cpu:
        print(
            "\nCPU per request in process (Django's test client), µs: the whole request, the M2M"
            "\ntoken check, the key verification, the Redis commands inside those two, the rest:"
        )
        floor_us = cpu.get("floor", {}).get("request_us", 0.0)
        for name in ("floor", "verify", "example"):
            c = cpu.get(name)
            if not c:
                continue
            rest = c["request_us"] - floor_us - c["token_us"] - c["key_us"]
            print(
                f"  {labels[name]:42} request {c['request_us']:7.1f}  token {c['token_us']:6.1f}  "
                f"key {c['key_us']:6.1f}  Redis {c['redis_us']:6.1f}  "
                + ("" if name == "floor" else f"rest over the floor {rest:6.1f}")
            )
    print("\nPostgreSQL writes per request at steady load (pg_stat_database deltas):")
    for name, label in labels.items():
        e = endpoints.get(name)
        if e and "pg_rows_updated_per_request" in e:
            print(
                f"  {label:42} rows updated {e['pg_rows_updated_per_request']:.4f}, "
                f"commits {e['pg_commits_per_request']:.4f} (reads commit too)"
            )
    verify_e = endpoints.get("verify")
    bound = _write_bound(report, verify_e) if verify_e else None
    if bound is not None:
        print(
            f"  (write-back every {report['write_back_interval_s']} s: at most one row update "
            f"per key verified in an interval; {report.get('verify_keys')} keys in rotation at "
            f"{verify_e['rps']:.0f} req/s make that {bound:.4f} per request, against 1 "
            "for a write per verification)"
        )
    rss = http.get("worker_rss_mb", [])
    print(f"\ngunicorn worker RSS after the run: {', '.join(f'{r} MB' for r in rss)}")
    check = http.get("count_check")
    if check:
        print(
            f"verifications counted in the database: {check['verifications_counted_in_database']:,} "
            f"(wrk completed {check['requests_completed_by_wrk']:,}; in flight at each stop may add a few)"
        )
    limited = report.get("verify_limited_vs_unlimited")
    if limited:
        print(
            f"\nin-process verify, key with a rate limit and credits vs one without: "
            f"{limited['limited_median_us']} µs vs {limited['unlimited_median_us']} µs "
            f"(x{limited['ratio']})"
        )
    v1k = report.get("verify_inprocess_1k", {})
    scale = report.get("scale", {})
    configured = "on" if v1k.get("prepared_statements_in_settings") else "off"
    print(
        f"\nin-process api_key_verify on PostgreSQL, median µs ({v1k.get('queries')} statement(s) a call):"
    )
    print(f"  {'':34} {'1,000 keys':>11} {'at scale':>9} {'ratio':>6}")
    for label, field in (
        (f"as configured (prepared: {configured})", "median_us"),
        ("prepared statements off", "median_us_unprepared"),
        ("prepared statements allowed", "median_us_prepared"),
    ):
        small_v = v1k.get(field)
        big_v = scale.get("verify_inprocess", {}).get(field) if scale else None
        ratio = f"{big_v / small_v:6.2f}" if small_v and big_v else ""
        print(f"  {label:34} {small_v!s:>11} {big_v!s:>9} {ratio}")
    if scale:
        print(
            f"  (the first 1,000 keys again, in the table of {scale['keys']:,}: "
            f"{scale['verify_inprocess_first_1k_keys']['median_us']} µs as configured)"
        )
        print(f"\nbulk load: {scale['load_keys_per_s']:,} keys/s ({scale['load_s']} s)")
        for name in ("list_first_page", "list_deep_page", "list_org_deep_page"):
            print(
                f"{name} at {scale['keys']:,} keys: median {scale[name]['median_ms']} ms, "
                f"{scale[name]['queries']} queries"
            )
    token = report.get("token_endpoint")
    if token:
        print(
            f"\nPOST /oauth2/token in process, median µs (client secrets stored as {token['hasher_as_stored']}):"
        )
        print(
            f"  correct secret {token['request_correct_secret_us']}, wrong secret of a known client "
            f"{token['request_wrong_secret_us']}, unknown client {token['request_unknown_client_us']}"
        )
        print(
            f"  checking the secret alone: as stored {token['check_as_stored_correct_us']} (correct) / "
            f"{token['check_as_stored_wrong_us']} (wrong); as Argon2 {token['check_argon2_correct_us']} / "
            f"{token['check_argon2_wrong_us']}"
        )
    small, large = report.get("lists_at_10", {}), report.get("lists_at_10000", {})
    print()
    for name in ("admin_key_list", "portal_user_key_list", "portal_org_key_list", "api_key_list"):
        print(
            f"{name}: {small.get(name)} queries at {small.get('keys_in_table')} keys, "
            f"{large.get(name)} at {large.get('keys_in_table')} keys"
        )
    # Targets (figures, not tests).
    targets: dict[str, bool | None] = {}
    if endpoints:
        targets["verify >= 0.5 x floor"] = (
            endpoints["verify"]["vs_floor"] >= TARGETS["verify_vs_floor"]
        )
        targets["example (in-process key auth) >= 0.6 x floor"] = (
            endpoints["example"]["vs_floor"] >= TARGETS["example_vs_floor"]
        )
        targets["worker RSS <= 100 MB"] = bool(rss) and max(rss) <= TARGETS["worker_rss_mb"]
        bound = _write_bound(report, endpoints["verify"])
        if bound is not None:
            targets[
                "PostgreSQL rows updated per verification <= one per key verified per "
                "write-back interval, +25% (verify, 1,000 keys)"
            ] = endpoints["verify"].get("pg_rows_updated_per_request", 1) <= 1.25 * bound
    if endpoints.get("verify_hot_limited_key") and endpoints.get("verify_hot_key"):
        ratio = endpoints["verify_hot_limited_key"]["rps"] / endpoints["verify_hot_key"]["rps"]
        report["limited_throughput_ratio"] = round(ratio, 3)
        targets[
            "verify endpoint throughput, a key with both limits >= 0.90 x a key without "
            f"(one hot key each: {ratio:.2f} x)"
        ] = ratio >= TARGETS["limited_throughput_ratio"]
    if v1k:
        targets["in-process verify median <= 120 µs (warm key, as configured)"] = (
            v1k["median_us"] <= TARGETS["verify_median_us_pg"]
        )
        if "median_us_prepared" in v1k:
            targets["in-process verify median <= 120 µs (warm key, prepared statements)"] = (
                v1k["median_us_prepared"] <= TARGETS["verify_median_us_pg"]
            )
    if scale:
        for field, label in (
            ("median_us", "as configured"),
            ("median_us_prepared", "prepared statements"),
        ):
            if field in v1k:
                targets[f"verify median at scale <= 1.15 x at 1,000 ({label})"] = (
                    scale["verify_inprocess"][field] <= TARGETS["scale_ratio"] * v1k[field]
                )
        targets["list first and deep page median <= 25 ms"] = all(
            scale[n]["median_ms"] <= TARGETS["list_median_ms"]
            for n in ("list_first_page", "list_deep_page")
        )
    for name in ("admin_key_list", "portal_user_key_list", "portal_org_key_list"):
        a, b = small.get(name), large.get(name)
        targets[f"{name}: same query count at 10 and 10,000"] = (
            (a == b) if isinstance(a, int) and isinstance(b, int) else None
        )
    report["targets"] = {k: _mark(v) for k, v in targets.items()}
    why = _why_missed(report, targets)
    print("\ntargets:")
    for name, mark in report["targets"].items():
        print(f"  {mark:7} {name}")
        for line in why.get(name, []):
            print(f"          {line}")
    m = report["machine"]
    print(
        f"\nload average at start {m['load_average_start']}, at end {m.get('load_average_end')}; "
        f"{m['cpus']} CPUs; PostgreSQL {m.get('postgresql')}"
    )


if __name__ == "__main__":
    sys.exit(main())
