"""``manage.py db_worker``: django-tasks-db's worker (the embedded default backend), with the
periodic jobs' scheduler (``apikeys.tasks``) running beside it in a thread.

It takes the place of django_tasks_db's own command because ``apikeys`` comes first in
``INSTALLED_APPS``; every option is that command's. Run as many as you like: each tick of
each periodic job still runs once (``apikeys.tasks``). ``--no-scheduler`` leaves the
periodic jobs to other processes."""

from __future__ import annotations

import threading
from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from apikeys.tasks import scheduler_loop


class Command(DbWorkerCommand):
    help = "Run a database background worker, and the periodic jobs' scheduler."

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-scheduler",
            action="store_false",
            dest="scheduler",
            help="Do not run the periodic jobs' scheduler in this worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.pop("scheduler", True) and not options.get("batch"):
            stop = threading.Event()
            threading.Thread(
                target=scheduler_loop, args=(stop,), name="apikeys-scheduler", daemon=True
            ).start()
        super().handle(*args, **options)
