"""Delete usage history older than the retention (``APIKEYS_USAGE_RETENTION_DAYS``, default
400 days, or ``--days``). Run it daily (cron, a systemd timer), beside ``cleartokens``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apikeys import exceptions as errors
from apikeys.services import api_key_usage_prune


class Command(BaseCommand):
    help = "Delete hours of API key usage history older than the retention."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Keep this many days (default: the setting)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            deleted = api_key_usage_prune(retention_days=options["days"])
        except errors.ValidationFailed as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Deleted {deleted} hour(s) of usage history.")
