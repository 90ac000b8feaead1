"""``manage.py apikeys_scheduler``: the periodic jobs' scheduler alone (``apikeys.tasks``),
for a task backend whose workers are not ``db_worker`` (RQ's). It claims each due tick and
enqueues the job; the workers run it. Run one or several (each tick still runs once)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from apikeys.tasks import scheduler_loop


class Command(BaseCommand):
    help = "Enqueue the periodic jobs when they are due (beside RQ workers)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between passes.")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        scheduler_loop(stop, interval=options["interval"])
