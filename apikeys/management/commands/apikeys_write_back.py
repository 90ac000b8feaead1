"""``manage.py apikeys_write_back``: write the verification counts kept in Redis back to the
database now (``apikeys.keycache.write_back_now``). Workers do it by themselves every
``COUNTS_WRITE_BACK_INTERVAL``; this is for an explicit flush (before a Redis maintenance,
in a test, or from cron with ``COUNTS_WRITE_BACK_THREAD`` off). It takes the workers' lock
when it can (waiting for it), and is safe beside their write-back when it cannot. Safe to run at any time.

``--new-epoch`` also replaces Redis's epoch, so that every worker reads every key again from
the database: after a key-state change that could not reach Redis from its worker while
other workers could (README, "When Redis fails")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apikeys import keycache


class Command(BaseCommand):
    help = "Write the verification counts kept in Redis back to the database now."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--new-epoch",
            action="store_true",
            help="Also make every worker read every key again from the database.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["new_epoch"] and keycache.new_epoch():
            self.stdout.write("Replaced the epoch: every worker reads every key again.")
        written = keycache.write_back_now()
        self.stdout.write(f"Wrote back the counts of {written} key(s).")
