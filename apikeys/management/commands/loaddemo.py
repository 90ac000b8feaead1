"""Load a demo environment: an admin, an organization with members and roles, an API with
scopes and a couple of keys. Idempotent: running it again creates nothing twice."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apikeys import conf, services
from apikeys.models import Api, ApiKey, Organization, Role

DEMO_PASSWORD = "demo-password-123"
ADMIN_USERNAME = "admin"
MEMBER_EMAIL = "ada@example.com"
VIEWER_EMAIL = "grace@example.com"
ORG_CODE = "org_acmedemo"
AUDIENCE = "https://api.acme.example"


class Command(BaseCommand):
    help = "Load a demo organization, users, roles, an API with scopes and two keys."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Load even with DEBUG off (the demo users have a well-known password).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_without_debug"]:
            raise CommandError(
                "Refusing to load demo users with a well-known password while DEBUG is off; "
                "pass --allow-without-debug if this really is a throwaway environment."
            )
        with transaction.atomic():
            issued = self._load()
        self._print(issued)

    def _load(self) -> list[services.IssuedKey]:
        User = get_user_model()
        actor = services.Actor.system()
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            admin = User.objects.create_superuser(
                ADMIN_USERNAME, "admin@example.com", DEMO_PASSWORD
            )
        people = {}
        for email, given, family in [
            (MEMBER_EMAIL, "Ada", "Lovelace"),
            (VIEWER_EMAIL, "Grace", "Hopper"),
        ]:
            person = User.objects.filter(email__iexact=email).first()
            if person is None:
                person = services.user_create(
                    email=email,
                    given_name=given,
                    family_name=family,
                    password=DEMO_PASSWORD,
                    actor=actor,
                )
            people[email] = person

        roles = {}
        for key, name, perms in [
            (
                "key-admin",
                "Key administrator",
                ["read:org:authentication", "write:org:authentication"],
            ),
            ("key-viewer", "Key viewer", ["read:org:authentication"]),
        ]:
            role = Role.objects.filter(key=key).first()
            if role is None:
                role = services.role_create(key=key, name=name, actor=actor)
                services.role_change_permissions(role=role, add=perms, actor=actor)
            roles[key] = role

        organization = Organization.objects.filter(code=ORG_CODE).first()
        if organization is None:
            organization = services.organization_create(
                name="Acme Corp", code=ORG_CODE, actor=actor
            )
            services.membership_add(
                organization=organization,
                user=people[MEMBER_EMAIL],
                roles=[roles["key-admin"]],
                actor=actor,
            )
            services.membership_add(
                organization=organization,
                user=people[VIEWER_EMAIL],
                roles=[roles["key-viewer"]],
                actor=actor,
            )

        api = Api.objects.filter(audience=AUDIENCE).first()
        if api is None:
            api = services.api_create(name="Acme API", audience=AUDIENCE, actor=actor)
            for key, description in [
                ("read:users", "Read users"),
                ("write:users", "Create and change users"),
                ("read:orders", "Read orders"),
            ]:
                services.scope_create(api=api, key=key, description=description, actor=actor)

        issued = []
        if not ApiKey.objects.filter(api=api).exists():
            issued.append(
                services.api_key_issue(
                    name="Acme backend",
                    api=api,
                    scopes=["read:users", "write:users"],
                    organization=organization,
                    actor=actor,
                )
            )
            issued.append(
                services.api_key_issue(
                    name="Ada's script",
                    api=api,
                    scopes=["read:users"],
                    user=people[MEMBER_EMAIL],
                    actor=actor,
                )
            )
        return issued

    def _print(self, issued: list[services.IssuedKey]) -> None:
        write = self.stdout.write
        # The address the portal's links are built on: make run writes it for its HOST/PORT.
        site = str(conf.get("PORTAL_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
        write(self.style.SUCCESS("Demo environment ready."))
        write(f"  Admin:  {site}/admin/  user {ADMIN_USERNAME!r}, password {DEMO_PASSWORD!r}")
        write(
            f"  Portal: {site}/portal/  {MEMBER_EMAIL} (key admin of Acme Corp) "
            f"or {VIEWER_EMAIL} (viewer), password {DEMO_PASSWORD!r}"
        )
        write(
            f"          or a one-time sign-in link, as an app would get from the API: "
            f".venv/bin/python manage.py portallink {MEMBER_EMAIL} --org {ORG_CODE}"
        )
        if issued:
            write("  Demo keys (shown once, now; only their digests are stored):")
            for item in issued:
                write(f"    {item.api_key.name}: {item.plaintext}")
        else:
            write("  Demo keys exist already; rotate one in the admin to see a new secret.")
