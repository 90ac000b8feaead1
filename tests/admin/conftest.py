"""Fixtures of the admin tests: staff members signed in with chosen permissions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import UserFactory


@pytest.fixture
def staff_client(db) -> Callable[..., Client]:
    """``staff_client("view_apikey", "change_apikey")``: a client signed in as a staff member
    (not a superuser) holding exactly those permissions of the apikeys app."""

    def make(*codenames: str) -> Client:
        person = UserFactory(is_staff=True)
        person.user_permissions.set(
            Permission.objects.filter(content_type__app_label="apikeys", codename__in=codenames)
        )
        client = Client()
        client.force_login(person)
        client.person = person  # type: ignore[attr-defined]
        return client

    return make
