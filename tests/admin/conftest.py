"""Fixtures of the admin tests: staff members signed in with chosen permissions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tests.factories import UserFactory
from tests.formtokens import FormTokenClient


@pytest.fixture
def admin_client(admin_user) -> Client:
    """pytest-django's ``admin_client``, posting forms with their one-time token as a
    browser would (the refusal of a re-sent form is tested on its own)."""
    client = FormTokenClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def staff_client(db) -> Callable[..., Client]:
    """``staff_client("view_apikey", "change_apikey")``: a client signed in as a staff member
    (not a superuser) holding exactly those permissions of the apikeys app."""

    def make(*codenames: str) -> Client:
        person = UserFactory(is_staff=True)
        person.user_permissions.set(
            Permission.objects.filter(content_type__app_label="apikeys", codename__in=codenames)
        )
        client = FormTokenClient()
        client.force_login(person)
        client.person = person  # type: ignore[attr-defined]
        return client

    return make
