"""Fixtures of the reliability tests: one throwaway PostgreSQL per test session (per xdist
worker), a template database migrated once, and the service under gunicorn.

These tests never use pytest-django's database or ``DATABASE_URL``: they run the real
service in its production configuration against servers they start themselves, so they
behave the same on the SQLite and the PostgreSQL pass of CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        made.destroy()
