"""``manage.py db_worker``: django-tasks-db's worker (the embedded default backend), with the
periodic jobs' scheduler (``apikeys.tasks``) running beside it in a thread.

It takes the place of django_tasks_db's own command because ``apikeys`` comes first in
``INSTALLED_APPS``; every option is that command's. Run as many as you like: each tick of
each periodic job still runs once (``apikeys.tasks``). ``--no-scheduler`` leaves the
periodic jobs to other processes."""

from __future__ import annotations

import os
import threading
from typing import Any

from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
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
        # With --reload (DEBUG's default) the first process only watches files and restarts
        # the second, which does the work: only that one runs the scheduler.
        working = not options.get("reload") or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
        if options.pop("scheduler", True) and not options.get("batch") and working:
            stop = threading.Event()
            threading.Thread(
                target=scheduler_loop, args=(stop,), name="apikeys-scheduler", daemon=True
            ).start()
        super().handle(*args, **options)
