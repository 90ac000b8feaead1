"""Real worker processes: ``manage.py db_worker`` (several at once, one killed with SIGKILL)
and an RQ worker on a Redis of its own, delivering to a receiver on loopback.

Like the reliability tests, these run the service in its production configuration on a
throwaway PostgreSQL (``tests.servers``), whatever ``DATABASE_URL`` says; the waits below are
ceilings for a broken run, never asserted on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import (
    PYTHON,
    ROOT,
    RedisServer,
    manage,
    production_env,
)
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

SETUP = """
import json
from apikeys import services
from apikeys.models import Api, Organization
actor = services.Actor.system()
created = services.webhook_create(endpoint_url={url!r}, event_types=["api_key.created"], actor=actor)
api = Api.objects.create(name="Billing", audience="https://billing.example.com")
org = Organization.objects.create(name="Acme", code="org_acme")
key = services.api_key_issue(name="Backend", api=api, organization=org, actor=actor).api_key
print(json.dumps({{"secret": created.secret, "key_id": key.id}}))
"""

DELIVERY_STATE = """
import json
from apikeys.models import WebhookDelivery
print(json.dumps([[d.status, d.attempts] for d in WebhookDelivery.objects.all()]))
"""

PERIODIC_RUNS = """
import json
from django_tasks_db.models import DBTaskResult
rows = DBTaskResult.objects.filter(task_path="apikeys.tasks.periodic_job_run")
print(json.dumps([[r.args_kwargs["args"], r.status] for r in rows]))
"""


def shell(env: dict[str, str], code: str) -> object:
    return json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])


@contextmanager
def worker(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def db_worker(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    return worker(env, "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload")


def wait_until(check, *, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def service_env(cluster, **extra: str) -> dict[str, str]:
    return production_env(
        DATABASE_URL=cluster.fresh_database(),
        APIKEYS_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
        **extra,
    )


def test_a_worker_killed_mid_delivery_delivers_later_with_the_same_id(cluster):
    # A short attempt timeout and claim, so that the killed worker's claim runs out soon.
    env = service_env(
        cluster, APIKEYS_WEBHOOK_TIMEOUT_SECONDS="3", APIKEYS_WEBHOOK_CLAIM_SECONDS="4"
    )
    with Receiver(hold=True) as receiver:
        setup = shell(env, SETUP.format(url=receiver.url))
        with db_worker(env) as first:
            # The change's delivery reaches the receiver, which holds it: mid-delivery.
            receiver.wait_for(1)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        receiver.release()
        assert shell(env, DELIVERY_STATE) == [["pending", 0]]
        with db_worker(env):
            arrived = receiver.wait_for(2)
            state = wait_until(lambda: shell(env, DELIVERY_STATE) == [["delivered", 1]])
        assert state
        assert arrived[0].headers["webhook-id"] == arrived[1].headers["webhook-id"]
        payload = arrived[1].verified(setup["secret"])
        assert payload["type"] == "api_key.created"
        assert payload["data"]["api_key"]["id"] == setup["key_id"]


def test_periodic_jobs_run_once_per_tick_with_several_workers(cluster):
    env = service_env(cluster)
    with db_worker(env) as a, db_worker(env), db_worker(env):
        # Enough ticks of the 5-second job, with three workers racing for each.
        assert wait_until(
            lambda: (
                sum(args[0] == "webhooks.deliveries_due" for args, _ in shell(env, PERIODIC_RUNS))
                >= 3
            )
        )
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        before = {tuple(args) for args, _ in shell(env, PERIODIC_RUNS)}
        # The other two go on claiming new ticks.
        assert wait_until(lambda: {tuple(args) for args, _ in shell(env, PERIODIC_RUNS)} - before)
    runs = shell(env, PERIODIC_RUNS)
    counts = Counter(tuple(args) for args, _ in runs)
    assert counts and max(counts.values()) == 1
    jobs = {name for name, _tick in counts}
    assert {"webhooks.deliveries_due", "api_key.expiring", "api_key.expired"} <= jobs
    ticks = sorted(tick for name, tick in counts if name == "webhooks.deliveries_due")
    # No tick skipped while workers ran (one killed worker did not stop the schedule).
    assert ticks == list(range(ticks[0], ticks[-1] + 1))


def test_an_rq_worker_delivers_on_redis_and_the_scheduler_retries_there(cluster):
    redis = RedisServer()
    redis.start()
    try:
        env = service_env(
            cluster,
            TASKS_BACKEND="rq",
            RQ_URL=redis.url(0),
            APIKEYS_WEBHOOK_RETRY_SCHEDULE="1",
        )
        # The first attempt fails: only the periodic job (apikeys_scheduler, enqueuing on
        # RQ) hands the retry to the RQ worker.
        with Receiver(answers=[500]) as receiver:
            setup = shell(env, SETUP.format(url=receiver.url))
            with (
                worker(env, "rqworker", "--job-class", "django_tasks_rq.Job", "default"),
                worker(env, "apikeys_scheduler", "--interval", "0.5"),
            ):
                arrived = receiver.wait_for(2)
                assert wait_until(lambda: shell(env, DELIVERY_STATE) == [["delivered", 2]])
            assert arrived[0].headers["webhook-id"] == arrived[1].headers["webhook-id"]
            payload = arrived[1].verified(setup["secret"])
            assert payload["data"]["api_key"]["id"] == setup["key_id"]
    finally:
        redis.stop()
