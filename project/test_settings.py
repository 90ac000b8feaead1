"""Settings for the test suite: the real settings, with throwaway secrets.

``DATABASE_URL`` and ``CACHE_URL`` still come from the environment, so ``make test``
runs the same suite on SQLite or on PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("APIKEYS_HASHING_SECRET", "test-only-hashing-secret-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from project.settings import *

# Parallel test workers (pytest-xdist) may share one Redis: keep their cache keys apart, and
# give each worker a Redis database of its own, since ``cache.clear()`` is a FLUSHDB that
# would otherwise wipe the other worker's key cache, rate-limit windows and unwritten counts
# in the middle of its test (seen in CI as a rate-limited key answering 200).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES["default"]["KEY_PREFIX"] = "test-" + _worker
_location = CACHES["default"].get("LOCATION")
if (
    isinstance(_location, str)
    and _location.startswith(("redis://", "rediss://"))
    and _worker.removeprefix("gw").isdigit()
):
    # Databases 1-15 (Redis's default 16); the suite runs with far fewer workers.
    _parts = urlsplit(_location)
    CACHES["default"]["LOCATION"] = urlunsplit(
        _parts._replace(path=f"/{1 + int(_worker.removeprefix('gw')) % 15}")
    )

# The unit tests render pages without a collectstatic first; the servers the reliability,
# security and browser tests start use the real storage on a collected STATIC_ROOT.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# With Redis, verification counts are written back by `manage.py apikeys_write_back` or by a
# test that calls apikeys.keycache.write_back(): a background thread in a test process would
# reach the test database from outside the test's transaction (the servers the reliability
# tests start keep the thread, as production does).
APIKEYS["COUNTS_WRITE_BACK_THREAD"] = False
