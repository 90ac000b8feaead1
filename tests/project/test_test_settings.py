"""The test settings keep parallel workers (pytest-xdist) apart on a shared Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cache_settings(worker: str | None, cache_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}
    env["CACHE_URL"] = cache_url
    if worker is not None:
        env["PYTEST_XDIST_WORKER"] = worker
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, project.test_settings as s; print(json.dumps(s.CACHES['default']))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_each_worker_has_a_redis_database_and_key_prefix_of_its_own():
    """``cache.clear()`` is a FLUSHDB: in one shared database it would wipe the other
    worker's key cache, rate-limit windows and unwritten counts mid-test."""
    url = "redis://127.0.0.1:6379/0"
    gw0, gw1 = cache_settings("gw0", url), cache_settings("gw1", url)

    assert gw0["LOCATION"] == "redis://127.0.0.1:6379/1"
    assert gw1["LOCATION"] == "redis://127.0.0.1:6379/2"
    assert (gw0["KEY_PREFIX"], gw1["KEY_PREFIX"]) == ("test-gw0", "test-gw1")


def test_a_run_without_workers_and_a_local_memory_cache_are_left_as_configured():
    assert cache_settings(None, "redis://127.0.0.1:6379/0")["LOCATION"] == (
        "redis://127.0.0.1:6379/0"
    )
    assert cache_settings("gw1", "locmemcache://")["LOCATION"] == ""
