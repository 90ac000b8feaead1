"""Fixtures of the reliability tests: one throwaway PostgreSQL per test session (per xdist
worker), with a template database migrated once (``tests.servers.cluster``).

These tests never use pytest-django's database or ``DATABASE_URL``: they run the real
service in its production configuration against servers they start themselves, so they
behave the same on the SQLite and the PostgreSQL pass of CI.
"""

from __future__ import annotations

from tests.servers import cluster  # noqa: F401  (a fixture)
