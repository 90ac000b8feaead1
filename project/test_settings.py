"""Settings for the test suite: the real settings, with throwaway secrets.

``DATABASE_URL`` and ``CACHE_URL`` still come from the environment, so ``make test``
runs the same suite on SQLite or on PostgreSQL and Redis.
"""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("APIKEYS_HASHING_SECRET", "test-only-hashing-secret-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from project.settings import *

# Parallel test workers (pytest-xdist) may share one Redis: keep their cache keys apart.
CACHES["default"]["KEY_PREFIX"] = "test-" + os.environ.get("PYTEST_XDIST_WORKER", "main")

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
