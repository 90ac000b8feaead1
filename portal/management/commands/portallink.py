"""Print a one-time portal link for a user, as ``POST /api/v1/portal/generate_url`` would.

For demos and support: ``python manage.py portallink ada@example.com --org org_acmedemo``.
The link is made by the same service and audited as made by the system.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from apikeys import conf
from apikeys.exceptions import ApiKeysError
from apikeys.models import Organization
from apikeys.services import Actor
from portal.services import portal_link_create


class Command(BaseCommand):
    help = "Print a one-time sign-in link to the self-serve portal for a user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("user", help="The user's email or public id (kp_…).")
        parser.add_argument("--org", dest="org_code", help="Open this organization's keys.")
        parser.add_argument(
            "--sub-nav", dest="sub_nav", help="api_keys, user_api_keys or organization_api_keys."
        )
        parser.add_argument(
            "--return-url", dest="return_url", help="Target of the “Back to app” link."
        )
        parser.add_argument(
            "--base-url",
            dest="base_url",
            help="Scheme and host of the portal (default: APIKEYS['PORTAL_PUBLIC_URL'], else http://127.0.0.1:8000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(
            Q(email__iexact=options["user"]) | Q(public_id=options["user"])
        ).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        organization = None
        if options["org_code"]:
            organization = Organization.objects.filter(code=options["org_code"]).first()
            if organization is None:
                raise CommandError(f"No organization {options['org_code']!r}.")
        base_url = options["base_url"] or conf.get("PORTAL_PUBLIC_URL") or "http://127.0.0.1:8000"
        try:
            url = portal_link_create(
                user=user,
                organization=organization,
                return_url=options["return_url"],
                sub_nav=options["sub_nav"],
                base_url=base_url,
                actor=Actor.system(),
            )
        except ApiKeysError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(url)
