"""The scheduler's claims, the tasks, the settings' checks, secret sealing and log redaction,
in-process (the real worker processes are in test_workers.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apikeys import checks, crypto, tasks
from apikeys.logging import redact_secrets
from apikeys.models import PeriodicJobRun

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def enqueued(monkeypatch):
    runs: list[tuple[str, int]] = []

    class Recorder:
        def enqueue(self, name: str, tick: int) -> None:
            runs.append((name, tick))

    monkeypatch.setattr(tasks, "periodic_job_run", Recorder())
    return runs


def test_each_tick_of_each_job_is_claimed_by_one_scheduler(db, enqueued):
    first, second = tasks.Scheduler(worker="a"), tasks.Scheduler(worker="b")
    claimed = first.run_due(now=NOW)
    assert set(claimed) == {job.name for job in tasks.PERIODIC_JOBS}
    assert second.run_due(now=NOW) == []
    assert first.run_due(now=NOW) == []  # seen: not even tried again
    later = second.run_due(now=NOW + timedelta(seconds=5))
    assert later == ["webhooks.deliveries_due"]
    counts = {}
    for name, tick in enqueued:
        counts[(name, tick)] = counts.get((name, tick), 0) + 1
    assert set(counts.values()) == {1}
    assert PeriodicJobRun.objects.count() == len(enqueued)


def test_old_claims_are_pruned(db, enqueued):
    tasks.Scheduler().run_due(now=NOW - timedelta(days=3))
    tasks.Scheduler().run_due(now=NOW)
    assert tasks.periodic_claims_prune(now=NOW) == len(tasks.PERIODIC_JOBS)
    assert PeriodicJobRun.objects.count() == len(tasks.PERIODIC_JOBS)


def test_a_job_runs_its_callable_and_an_unknown_one_is_skipped(db, monkeypatch):
    monkeypatch.setattr(
        tasks,
        "PERIODIC_JOBS",
        [tasks.PeriodicJob("t", timedelta(seconds=1), "apikeys.tasks.periodic_claims_prune")],
    )
    assert tasks.periodic_job_run.call("t", 1) == 0
    assert tasks.periodic_job_run.call("gone", 1) is None


def test_the_loop_stops_and_survives_a_failing_pass(db, monkeypatch):
    import threading

    stop = threading.Event()
    passes = []

    def run_due(self, *, now=None):
        passes.append(1)
        stop.set()
        raise RuntimeError("database away")

    monkeypatch.setattr(tasks.Scheduler, "run_due", run_due)
    tasks.scheduler_loop(stop, interval=0)
    assert passes == [1]


@pytest.mark.parametrize(
    ("knob", "value", "error"),
    [
        ("WEBHOOK_TIMEOUT_SECONDS", 0, "apikeys.E501"),
        ("API_KEY_EXPIRING_DAYS", "7", "apikeys.E501"),
        ("WEBHOOK_RETRY_SCHEDULE", [], "apikeys.E502"),
        ("WEBHOOK_RETRY_SCHEDULE", [5, -1], "apikeys.E502"),
        ("WEBHOOK_CLAIM_SECONDS", 10, "apikeys.E503"),
    ],
)
def test_bad_webhook_settings_stop_start_up(settings, knob, value, error):
    settings.APIKEYS = {**settings.APIKEYS, knob: value}
    assert error in [e.id for e in checks.check_webhook_settings()]


def test_the_default_webhook_settings_pass(settings):
    assert checks.check_webhook_settings() == []
    from apikeys import conf

    assert sum(conf.DEFAULTS["WEBHOOK_RETRY_SCHEDULE"]) >= 24 * 3600


def test_a_sealed_secret_opens_only_with_its_key():
    secret = crypto.generate_webhook_secret()
    sealed = crypto.seal(secret, "k" * 40)
    assert secret not in sealed
    assert crypto.unseal(sealed, "k" * 40) == secret
    with pytest.raises(ValueError):
        crypto.unseal(sealed, "other" * 10)


def test_webhook_secrets_are_redacted_from_logs():
    secret = crypto.generate_webhook_secret()
    assert secret not in redact_secrets(f"created with {secret} ok")


def test_the_deliver_task_makes_one_attempt(db):
    assert tasks.webhook_deliver.call("whd_" + "0" * 32) == "skipped"
