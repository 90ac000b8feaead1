"""Fixtures of the portal tests: organizations with members at each permission level."""

from __future__ import annotations

import pytest

from apikeys.models import Organization
from tests.factories import OrganizationFactory
from tests.portal.helpers import member_of


@pytest.fixture
def acme(db) -> Organization:
    return OrganizationFactory(name="Acme Corp")


@pytest.fixture
def globex(db) -> Organization:
    return OrganizationFactory(name="Globex")


@pytest.fixture
def writer(acme):
    """A member of Acme whose role grants read and write."""
    return member_of(acme, "write")


@pytest.fixture
def reader(acme):
    """A member of Acme whose role grants read only."""
    return member_of(acme, "read")


@pytest.fixture
def return_hosts(settings):
    """Allow return URLs to app.example.com and any host under example.org."""
    settings.APIKEYS = {
        **settings.APIKEYS,
        "PORTAL_RETURN_URL_HOSTS": ["app.example.com", ".example.org", "[::1]"],
    }
