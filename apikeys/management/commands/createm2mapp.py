"""Create an M2M application and print its credentials, the secret once, as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apikeys import services
from apikeys.exceptions import ApiKeysError
from apikeys.models import MANAGEMENT_SCOPES


class Command(BaseCommand):
    help = (
        "Create a machine-to-machine application for the Management API and print "
        '{"client_id": ..., "client_secret": ...} on stdout. The secret is shown only now.'
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            metavar="SCOPE",
            help=f"A granted scope; repeat for more. One of: {', '.join(MANAGEMENT_SCOPES)}.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["scope"]:
            raise CommandError("Give at least one --scope.")
        try:
            issued = services.m2m_application_create(
                name=options["name"], scopes=options["scope"], actor=services.Actor.system()
            )
        except ApiKeysError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            json.dumps(
                {"client_id": issued.application.client_id, "client_secret": issued.client_secret}
            )
        )
