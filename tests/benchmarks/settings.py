"""Settings of ``make bench``: the project's own settings, plus the bench-only floor URL.

Everything else (middleware, DRF, database and cache from the environment) is exactly what
production runs, so the floor is "this project's own DRF with no work in the view".
"""

from __future__ import annotations

from project.settings import *

ROOT_URLCONF = "tests.benchmarks.urls"
# A shared Redis may hold other users' keys: keep the bench's apart.
CACHES["default"]["KEY_PREFIX"] = "bench"
# The bench renders admin and portal pages in process to count their queries, without a
# collectstatic first: name static files plainly instead of through the manifest (what is
# measured, queries and API responses, does not depend on it).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
