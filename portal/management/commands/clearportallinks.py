"""Delete the one-time portal links that expired long ago, as django-oauth-toolkit's
``cleartokens`` does for expired access tokens: run both daily (cron, a systemd timer).

``python manage.py clearportallinks`` keeps the links of the last 7 days, so that a late
click still hears "this link was used" or "this link has expired"; ``--days 0`` deletes
every expired link. Each purge that deletes any link is one audit event, by the system.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apikeys.services import Actor
from portal.services import portal_links_purge


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = -1
    if not 0 <= days <= 36500:
        raise CommandError(f"--days must be a whole number from 0 to 36500, not {value!r}.")
    return days


class Command(BaseCommand):
    help = "Delete portal links that expired more than --days days ago (default 7)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            type=str,
            default="7",
            help="Keep links that expired within this many days (default 7; 0 keeps none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = _days(options["days"])
        deleted = portal_links_purge(expired_for=timedelta(days=days), actor=Actor.system())
        self.stdout.write(f"Deleted {deleted} portal link(s) that expired over {days} day(s) ago.")
