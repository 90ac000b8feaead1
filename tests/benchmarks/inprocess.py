"""In-process cost of one ``api_key_verify``, on the embedded default or on PostgreSQL.

    .venv/bin/python -m tests.benchmarks.inprocess                # SQLite (a temporary file)
    .venv/bin/python -m tests.benchmarks.inprocess --postgresql   # a throwaway PostgreSQL database
    .venv/bin/python -m tests.benchmarks.inprocess --through-api  # POST /api/v1/api_keys/verify
    .venv/bin/python -m tests.benchmarks.inprocess --postgresql --redis redis://127.0.0.1:6379/0 \
        --profile /tmp/verify.prof                                  # with the key cache, profiled

It migrates a fresh database, bulk-loads ``--keys`` keys (1,000 by default) and prints the
median of ``--calls`` verifications of valid keys, and the statements one makes. On
PostgreSQL it gives the figure with prepared statements off and allowed, timed call by call.
With ``--through-api`` it times the whole verify request instead, in process through DRF's
test client with a real M2M token from ``/oauth2/token`` (token check included). A figure,
not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--through-api", action="store_true")
    parser.add_argument(
        "--redis",
        default="locmemcache://",
        metavar="CACHE_URL",
        help="the cache (and so the key cache): e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of the timed calls to FILE"
    )
    args = parser.parse_args(argv)

    name = f"bench_inprocess_{secrets.token_hex(4)}"
    workdir = tempfile.TemporaryDirectory(prefix="bench-inprocess-")
    url = f"{args.pg}/{name}" if args.postgresql else f"sqlite:///{workdir.name}/bench.sqlite3"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.benchmarks.settings",
            "DATABASE_URL": url,
            "CACHE_URL": args.redis,
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "APIKEYS_HASHING_SECRET": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "WARNING",
        }
    )
    if args.postgresql:
        from tests.benchmarks.run import create_database, drop_database

        create_database(args.pg, name)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection, connections

        from tests.benchmarks import common

        call_command("migrate", verbosity=0)
        data = common.load_base()
        keys = common.add_keys(data, args.keys, sample=min(args.keys, 1000))
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        if args.through_api:
            figures = _request_median_us(keys[0], calls=args.calls)
        else:
            figures = common.verify_median_us(keys, calls=args.calls)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        figures.update(
            database=connection.vendor,
            keys=args.keys,
            load_average=[round(x, 2) for x in os.getloadavg()],
        )
        print(json.dumps(figures))
        connections.close_all()
    finally:
        if args.postgresql:
            drop_database(args.pg, name)
        workdir.cleanup()
    return 0


def _request_median_us(key: str, *, calls: int) -> dict[str, object]:
    """Median of ``POST /api/v1/api_keys/verify`` through the full stack, and its queries."""
    import statistics
    import time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from apikeys import services

    app = services.m2m_application_create(
        name="bench", scopes=["verify:api_keys"], actor=services.Actor.system()
    )
    token = (
        APIClient()
        .post(
            "/oauth2/token",
            {
                "grant_type": "client_credentials",
                "client_id": app.application.client_id,
                "client_secret": app.client_secret,
            },
        )
        .json()["access_token"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"api_key": key}
    for _ in range(200):  # warm up: connections, prepared statements, caches
        client.post("/api/v1/api_keys/verify", body, format="json")
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        response = client.post("/api/v1/api_keys/verify", body, format="json")
        times.append(time.perf_counter() - start)
    assert response.status_code == 200 and response.json()["is_valid"], response.content
    with CaptureQueriesContext(connection) as queries:
        client.post("/api/v1/api_keys/verify", body, format="json")
    return {
        "request": "POST /api/v1/api_keys/verify",
        "calls": calls,
        "median_us": round(statistics.median(times) * 1e6, 1),
        "queries": len(queries),
        # A server-bound statement is logged without its text.
        "statements": [(q["sql"] or "(server-bound)").split()[0] for q in queries.captured_queries],
    }


if __name__ == "__main__":
    sys.exit(main())
