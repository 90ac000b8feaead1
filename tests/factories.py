"""factory_boy factories. Keys are never built here: use the ``issued_key`` fixture or
``apikeys.services.api_key_issue`` so that tests exercise the real issuing path."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from apikeys.models import Api, ApiKeyUsage, Membership, Organization, Role, Scope


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.LazyAttribute(lambda u: u.username)
    first_name = "Ada"
    last_name = factory.Sequence(lambda n: f"Tester{n}")
    password = factory.django.Password(None)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")


class ApiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Api

    name = factory.Sequence(lambda n: f"API {n}")
    audience = factory.Sequence(lambda n: f"https://api{n}.example.com")


class ScopeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scope

    api = factory.SubFactory(ApiFactory)
    key = factory.Sequence(lambda n: f"read:things{n}")
    description = "A scope"


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Role

    key = factory.Sequence(lambda n: f"role-{n}")
    name = factory.Sequence(lambda n: f"Role {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.roles.set(extracted)


class ApiKeyUsageFactory(factory.django.DjangoModelFactory):
    """One hour of a key's usage history: ``ApiKeyUsageFactory(api_key=key, start=hour,
    verified=3, revoked=1)``. Pass ``api_key`` (an issued key) and ``start`` (a UTC hour)."""

    class Meta:
        model = ApiKeyUsage


def last_character_changed(key: str) -> str:
    """``key`` with its last character replaced by a different one (never the same key: a
    fixed replacement equals the original one time in 62)."""
    return key[:-1] + ("1" if key[-1] == "0" else "0")
