"""What the benchmark scripts share: the bench data set, and in-process timings and query
counts through Django's test client. Import only after ``django.setup()``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apikeys import bulk, services
from apikeys.models import Api, ApiKey, Organization, Role, SystemPermission

BENCH_AUDIENCE = "https://bench.example.com"


@dataclass
class BenchData:
    """The fixed part of the bench data set: one API with two scopes, one organization,
    one portal user who owns keys and may read the organization's, one superuser, one M2M
    application allowed to verify and read keys."""

    api: Api
    organization: Organization
    portal_user: Any
    superuser: Any
    client_id: str
    client_secret: str


def load_base() -> BenchData:
    """Create the fixed data through the services (what a real platform would do)."""
    actor = services.Actor.system()
    api = services.api_create(name="Bench API", audience=BENCH_AUDIENCE, actor=actor)
    for key in ("read:users", "write:users"):
        services.scope_create(api=api, key=key, description=key, actor=actor)
    organization = services.organization_create(name="Bench organization", actor=actor)
    portal_user = services.user_create(email="portal@bench.example.com", actor=actor)
    reader = services.role_create(key="bench-key-reader", name="Key reader", actor=actor)
    services.role_change_permissions(
        role=reader, add=[SystemPermission.READ_ORG_AUTHENTICATION], actor=actor
    )
    services.membership_add(
        organization=organization, user=portal_user, roles=[reader], actor=actor
    )
    user_model = type(portal_user)
    superuser = user_model.objects.create_superuser(
        username="admin@bench.example.com", email="admin@bench.example.com", password=None
    )
    issued = services.m2m_application_create(
        name="Bench verifier", scopes=["verify:api_keys", "read:api_keys"], actor=actor
    )
    assert Role.objects.filter(pk=reader.pk).exists()
    return BenchData(
        api=api,
        organization=organization,
        portal_user=portal_user,
        superuser=superuser,
        client_id=str(issued.application.client_id),
        client_secret=issued.client_secret,
    )


def add_keys(data: BenchData, count: int, *, sample: int = 0) -> list[str]:
    """Bulk-issue ``count`` keys with ``read:users``, owned in turn by the organization and
    the portal user; the plaintexts of ``sample`` of them, spread over the batch."""
    if count <= 0:
        return []
    made = bulk.api_key_bulk_issue(
        api=data.api,
        count=count,
        organizations=[data.organization],
        users=[data.portal_user],
        scopes=["read:users"],
        sample=sample,
        actor=services.Actor.system(),
    )
    return [s.plaintext for s in made.sample]


def token_client(data: BenchData) -> Client:
    """A test client holding a real token from ``POST /oauth2/token``."""
    client = Client()
    response = client.post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": data.client_id,
            "client_secret": data.client_secret,
        },
    )
    assert response.status_code == 200, response.content
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {response.json()['access_token']}"
    return client


def median_us(call: Callable[[int], Any], *, calls: int, warmup: int) -> float:
    """Median wall time of ``call(i)`` in microseconds, after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def verify_median_us(keys: Sequence[str], *, calls: int = 3000) -> dict[str, Any]:
    """Median of one in-process ``api_key_verify`` (valid keys, cycling through ``keys``,
    in autocommit as a web request runs it) and the statements one call makes.

    On PostgreSQL it times the calls with prepared statements off and allowed on the
    connection (``OPTIONS["prepare_threshold"]``) alternately, call by call, so that both
    figures see the same machine; ``median_us`` is the one the settings configure.
    """
    assert keys, "no sample keys"

    def verify(i: int) -> None:
        result = services.api_key_verify(key=keys[i % len(keys)], ip="127.0.0.1")
        if not result.is_valid:
            raise AssertionError(f"bench key did not verify: {result.code}")

    for i in range(max(300, len(keys))):
        verify(i)
    with CaptureQueriesContext(connection) as ctx:
        verify(0)
    figures: dict[str, Any] = {"queries": len(ctx.captured_queries), "calls": calls}
    if connection.vendor != "postgresql":
        figures["median_us"] = round(median_us(verify, calls=calls, warmup=0), 1)
        return figures
    raw = connection.connection
    configured = raw.prepare_threshold
    samples: dict[str, list[int]] = {"median_us_unprepared": [], "median_us_prepared": []}
    try:
        for i in range(2 * calls):
            mode = "median_us_prepared" if i % 2 else "median_us_unprepared"
            raw.prepare_threshold = 1 if i % 2 else None
            start = time.perf_counter_ns()
            verify(i // 2)
            samples[mode].append(time.perf_counter_ns() - start)
    finally:
        raw.prepare_threshold = configured
    for mode, times in samples.items():
        figures[mode] = round(statistics.median(times) / 1000, 1)
    figures["prepared_statements_in_settings"] = configured is not None
    figures["median_us"] = figures[
        "median_us_prepared" if configured is not None else "median_us_unprepared"
    ]
    return figures


@dataclass(frozen=True)
class Probe:
    """One request made in-process through Django's test client."""

    method: str
    path: str
    body: str | None = None
    headers: dict[str, str] | None = None

    def send(self, client: Client) -> Any:
        extra = dict(self.headers or {})
        if self.method == "POST":
            return client.post(self.path, self.body or "", content_type="application/json", **extra)
        return client.get(self.path, **extra)


def queries_per_request(client: Client, probe: Probe, *, expect: int = 200) -> int:
    """Statements one request makes (the second of two, so that connection set-up and
    first-use caches do not count)."""
    first = probe.send(client)
    if first.status_code != expect:
        raise AssertionError(
            f"{probe.method} {probe.path}: {first.status_code} {first.content[:300]!r}"
        )
    with CaptureQueriesContext(connection) as ctx:
        response = probe.send(client)
    assert response.status_code == expect, response.status_code
    return len(ctx.captured_queries)


def request_median_ms(client: Client, probe: Probe, *, calls: int = 50) -> float:
    """Median in-process time of one request through the whole Django stack, in ms."""

    def send(_: int) -> None:
        response = probe.send(client)
        if response.status_code != 200:
            raise AssertionError(f"{probe.path}: {response.status_code}")

    return round(median_us(send, calls=calls, warmup=5) / 1000, 2)


def total_verifications() -> int:
    """Sum of every key's verification count (a cross-check of the load generator)."""
    from django.db.models import Sum

    return int(ApiKey.objects.aggregate(total=Sum("verification_count"))["total"] or 0)


def token_endpoint_costs(data: BenchData, *, calls: int = 200) -> dict[str, Any]:
    """What one ``POST /oauth2/token`` costs, in process, for a correct secret, a wrong
    secret of a known client id and an unknown client id; and what checking the stored
    client secret alone costs, as stored and (for comparison) as an Argon2 hash, the
    password hasher client secrets used before issue 13.

    The failure throttle would answer wrong secrets 429 after a few: it is switched off for
    these calls (the secret is checked before the throttle counts), so every one is checked."""
    from django.conf import settings
    from django.contrib.auth.hashers import check_password, make_password
    from django.test import override_settings
    from oauth2_provider.models import get_application_model

    client = Client()

    def post(client_id: str, secret: str, expect: int) -> None:
        response = client.post(
            "/oauth2/token",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        assert response.status_code == expect, (response.status_code, response.content)

    def timed(client_id: str, secret: str, expect: int) -> float:
        samples = []
        unthrottled = {
            **settings.APIKEYS,
            "TOKEN_FAILURE_LIMIT": 0,
            "TOKEN_FAILURE_LIMIT_PER_IP": 0,
        }
        with override_settings(APIKEYS=unthrottled):
            for i in range(calls + 10):
                start = time.perf_counter_ns()
                post(client_id, secret, expect)
                if i >= 10:
                    samples.append(time.perf_counter_ns() - start)
        return round(statistics.median(samples) / 1000, 1)

    stored = get_application_model().objects.get(client_id=data.client_id).client_secret
    argon2 = make_password(data.client_secret, hasher="argon2")
    wrong = "x" * len(data.client_secret)
    hashing = {}
    for label, encoded in (("as_stored", stored), ("argon2", argon2)):
        for outcome, secret in (("correct", data.client_secret), ("wrong", wrong)):
            hashing[f"{label}_{outcome}_us"] = round(
                median_us(
                    lambda _i, secret=secret, encoded=encoded: check_password(secret, encoded),
                    calls=50,
                    warmup=3,
                ),
                1,
            )
    result = {
        "hasher_as_stored": stored.split("$", 1)[0],
        "request_correct_secret_us": timed(data.client_id, data.client_secret, 200),
        "request_wrong_secret_us": timed(data.client_id, wrong, 401),
        "request_unknown_client_us": timed("no-such-client-id-" + "0" * 20, wrong, 401),
        **{f"check_{k}": v for k, v in hashing.items()},
    }
    return result


def cpu_breakdown(client: Client, probe: Probe, *, calls: int = 500) -> dict[str, float]:
    """CPU time of one request in process (the test client, so a little more than under
    gunicorn), and the parts of it spent checking the M2M token, verifying the key, and in
    Redis commands (socket writes and reads, and parsing, inside the first two), in µs.

    Measured with ``time.process_time_ns`` around the real functions (no profiler), after a
    warm-up that fills every cache, so these are the costs of the hot path."""
    from apikeys import redisconn, services, tokencache

    spent = {"token": 0, "key": 0, "redis": 0}
    restore: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] += time.process_time_ns() - start

        restore.append((owner, name, original))
        setattr(owner, name, timed)

    for _ in range(100):
        probe.send(client)
    wrap(tokencache.TokenCache, "lookup", "token")
    wrap(services, "api_key_verify", "key")
    wrap(redisconn.Line, "call", "redis")  # a command packed on the way
    wrap(redisconn.Line, "send", "redis")  # a command packed beforehand (the hot path)
    try:
        start = time.process_time_ns()
        for _ in range(calls):
            response = probe.send(client)
        total = time.process_time_ns() - start
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)
    assert response.status_code == 200, response.status_code
    per_call = {"request": total, **spent}
    return {f"{part}_us": round(ns / calls / 1000, 1) for part, ns in per_call.items()}


def limited_vs_unlimited_us(data: BenchData, *, calls: int = 3000) -> dict[str, Any]:
    """In-process ``api_key_verify`` of a key with both usage limits (a rate limit and
    credits, both too large to refuse) against a key without limits, timed alternately call
    by call so that both figures see the same machine; the ratio's target is 1.10."""
    actor = services.Actor.system()
    plain = services.api_key_issue(
        name="Bench unlimited", api=data.api, organization=data.organization, actor=actor
    ).plaintext
    limited = services.api_key_issue(
        name="Bench limited",
        api=data.api,
        organization=data.organization,
        ratelimit={"limit": 10_000, "duration": 1},
        credits={"remaining": 1_000_000_000},
        actor=actor,
    ).plaintext
    samples: dict[str, list[int]] = {"unlimited": [], "limited": []}
    for i in range(2 * calls + 600):
        key, kind = (limited, "limited") if i % 2 else (plain, "unlimited")
        start = time.perf_counter_ns()
        result = services.api_key_verify(key=key, ip="127.0.0.1")
        elapsed = time.perf_counter_ns() - start
        if not result.is_valid:
            raise AssertionError(f"bench key did not verify: {result.code}")
        if i >= 600:  # warm-up
            samples[kind].append(elapsed)
    figures: dict[str, Any] = {
        f"{kind}_median_us": round(statistics.median(times) / 1000, 1)
        for kind, times in samples.items()
    }
    figures["ratio"] = round(figures["limited_median_us"] / figures["unlimited_median_us"], 3)
    return figures
