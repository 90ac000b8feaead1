"""Background work: the tasks the task runner executes, and the periodic jobs' scheduler.

Rules:

- A task is a small function that calls one service and is safe to run twice (a delivery
  is claimed before it is sent; the periodic jobs record each thing once).
- Periodic jobs are listed in :data:`PERIODIC_JOBS`, one line each: a name, how often, and
  the dotted path of a callable taking no arguments (a service; it may take ``now``
  keyword-only with a default). Adding a job is adding a line.
- :func:`periodic_jobs_run_due` runs in every worker (``manage.py db_worker`` calls it
  every second in a thread; ``manage.py apikeys_scheduler`` does the same beside RQ
  workers). For each job whose current tick (seconds since the epoch // interval) is not
  yet claimed, it inserts the claim row ``PeriodicJobRun(job, tick)``; the unique pair lets
  exactly one worker win, however many try, and that worker enqueues the job's task in
  the same transaction (with the database backend, claim and task commit together). A
  worker killed after its claim loses that tick's run only if it dies inside the
  transaction (then the claim rolls back and another worker takes the tick); killed while
  the job runs, the next tick runs the job again (every job here catches up by itself).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from apikeys.models import PeriodicJobRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """Run ``call`` (a dotted path) once per ``every`` across all workers."""

    name: str
    every: timedelta
    call: str


# name → interval → callable. One line per job.
PERIODIC_JOBS: list[PeriodicJob] = [
    # Retries whose time has come, and deliveries whose hand-over was lost.
    PeriodicJob(
        "webhooks.deliveries_due",
        timedelta(seconds=5),
        "apikeys.services.webhooks.webhook_deliveries_due",
    ),
    PeriodicJob(
        "api_key.expiring",
        timedelta(minutes=1),
        "apikeys.services.webhooks.api_key_expiring_events_record",
    ),
    PeriodicJob(
        "api_key.expired",
        timedelta(minutes=1),
        "apikeys.services.webhooks.api_key_expired_events_record",
    ),
    # Key policies' max_idle_days: idle keys revoked (reason "idle"), each announced as
    # api_key.idle_revoked by api_key_revoke itself.
    PeriodicJob(
        "api_key.idle_revoke",
        timedelta(hours=1),
        "apikeys.services.policies.api_keys_revoke_idle",
    ),
    PeriodicJob("scheduler.prune", timedelta(hours=1), "apikeys.tasks.periodic_claims_prune"),
    PeriodicJob(
        "webhooks.prune", timedelta(hours=1), "apikeys.services.webhooks.webhook_history_prune"
    ),
]

# Claims older than this are deleted by the scheduler.prune job.
CLAIM_RETENTION = timedelta(days=2)


def jobs() -> dict[str, PeriodicJob]:
    return {job.name: job for job in PERIODIC_JOBS}


@task()
def webhook_deliver(delivery_id: str) -> str:
    """Make one attempt of one webhook delivery (if due and not taken)."""
    from apikeys.services.webhooks import webhook_delivery_attempt

    return webhook_delivery_attempt(delivery_id=delivery_id)


@task()
def periodic_job_run(name: str, tick: int) -> Any:
    """Run the periodic job ``name`` for its claimed ``tick``."""
    job = jobs().get(name)
    if job is None:
        logger.warning("Periodic job %r is no longer registered; skipped.", name)
        return None
    result = import_string(job.call)()
    return result if isinstance(result, int | str | None) else None


def periodic_claims_prune(*, now: datetime | None = None) -> int:
    """Delete old claim rows; how many."""
    cutoff = (now or timezone.now()) - CLAIM_RETENTION
    deleted, _ = PeriodicJobRun.objects.filter(claimed_on__lt=cutoff).delete()
    return deleted


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class Scheduler:
    """Claims the due ticks of :data:`PERIODIC_JOBS` for one worker process. It remembers
    the last tick it saw per job, so that a worker tries each tick's INSERT once."""

    def __init__(self, *, worker: str | None = None) -> None:
        self.worker = worker or worker_name()
        self.seen: dict[str, int] = {}

    def run_due(self, *, now: datetime | None = None) -> list[str]:
        """Claim and enqueue every job whose current tick nobody has claimed; the names of
        the jobs this worker claimed."""
        now = now or timezone.now()
        claimed: list[str] = []
        for job in PERIODIC_JOBS:
            tick = int(now.timestamp() // job.every.total_seconds())
            if self.seen.get(job.name) == tick:
                continue
            try:
                with transaction.atomic():
                    PeriodicJobRun.objects.create(
                        job=job.name, tick=tick, claimed_on=now, worker=self.worker
                    )
                    periodic_job_run.enqueue(job.name, tick)
            except IntegrityError:
                pass  # another worker has this tick
            else:
                claimed.append(job.name)
            self.seen[job.name] = tick
        return claimed


def periodic_jobs_run_due(*, now: datetime | None = None) -> list[str]:
    """One pass of a fresh scheduler (what a worker does every second)."""
    return Scheduler().run_due(now=now)


def scheduler_loop(stop: Any, *, interval: float = 1.0) -> None:
    """Run :meth:`Scheduler.run_due` every ``interval`` seconds until ``stop`` (a
    ``threading.Event``) is set. A failing pass (database away) is logged and retried."""
    from django.db import close_old_connections

    scheduler = Scheduler()
    while not stop.is_set():
        close_old_connections()
        try:
            scheduler.run_due()
        except Exception:
            logger.exception("Periodic jobs' scheduler pass failed; trying again.")
        stop.wait(interval)
