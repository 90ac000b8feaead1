"""A stand-in for one web worker process, driven over stdin/stdout by the tests beside it.

Run as ``python -m tests.performance.worker`` with ``DATABASE_URL`` (and optionally
``CACHE_URL``) in the environment. It sets Django up once, keeps its database connection
between requests (``CONN_MAX_AGE``) as a gunicorn worker does, and answers one JSON command
per line with one JSON line. Requests go through Django's test client, so each one runs the
whole stack (middleware, token check, view, service) exactly as under gunicorn.

Commands (``op``): ``setup``, ``token``, ``verify_http``, ``verify_threads``, ``example``,
``get``, ``list``, ``revoke``, ``rotate``, ``close``. A failure answers ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.test_settings")

import django

django.setup()

from django.db import connection
from django.test import Client

from apikeys import services
from apikeys.models import ApiKey

STATE: dict[str, Any] = {}


def _client() -> Client:
    client = STATE.get("client")
    if client is None:
        raise RuntimeError("no token yet: send {'op': 'token'} first")
    return client


def setup(cmd: dict[str, Any]) -> dict[str, Any]:
    """Create an API, an organization, a key and an M2M application allowed to verify and
    read keys; answer the key's plaintext and the application's credentials."""
    actor = services.Actor.system()
    tag = cmd["tag"]
    api = services.api_create(
        name=f"Perf {tag}", audience=f"https://{tag}.perf.example.com", actor=actor
    )
    services.scope_create(api=api, key="read:users", description="", actor=actor)
    organization = services.organization_create(name=f"Perf {tag}", actor=actor)
    issued = services.api_key_issue(
        name="Perf key", api=api, scopes=["read:users"], organization=organization, actor=actor
    )
    application = services.m2m_application_create(
        name=f"Perf {tag}", scopes=["verify:api_keys", "read:api_keys"], actor=actor
    )
    return {
        "key": issued.plaintext,
        "key_id": issued.api_key.id,
        "org_code": organization.code,
        "client_id": str(application.application.client_id),
        "client_secret": application.client_secret,
    }


def token(cmd: dict[str, Any]) -> dict[str, Any]:
    client = Client()
    response = client.post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": cmd["client_id"],
            "client_secret": cmd["client_secret"],
        },
    )
    if response.status_code != 200:
        raise RuntimeError(f"token: {response.status_code} {response.content[:200]!r}")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {response.json()['access_token']}"
    STATE["client"] = client
    return {"ok": True}


def _verify_once(client: Client, key: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/api_keys/verify", json.dumps({"api_key": key}), content_type="application/json"
    )
    if response.status_code != 200:
        raise RuntimeError(f"verify: {response.status_code} {response.content[:200]!r}")
    body = response.json()
    return {
        k: body[k] for k in ("code", "is_valid", "key_id", "verification_count", "last_verified_on")
    }


def verify_http(cmd: dict[str, Any]) -> dict[str, Any]:
    """``n`` verifications of ``key`` through ``POST /api/v1/api_keys/verify``."""
    client = _client()
    return {"results": [_verify_once(client, cmd["key"]) for _ in range(cmd.get("n", 1))]}


def verify_threads(cmd: dict[str, Any]) -> dict[str, Any]:
    """``threads`` threads, each with its own database connection, each calling
    ``api_key_verify`` ``n`` times: concurrency inside one process."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(cmd["threads"])

    def run() -> None:
        try:
            start.wait(timeout=30)
            mine = []
            for _ in range(cmd["n"]):
                result = services.api_key_verify(key=cmd["key"], ip="127.0.0.1")
                mine.append(
                    {
                        "code": result.code,
                        "is_valid": result.is_valid,
                        "key_id": result.key_id,
                        "verification_count": result.verification_count,
                        "last_verified_on": result.last_verified_on.isoformat()
                        if result.last_verified_on
                        else None,
                    }
                )
            with lock:
                results.extend(mine)
        except Exception:  # noqa: BLE001 - reported to the test, which fails on it
            with lock:
                errors.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(cmd["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(errors[0])
    return {"results": results}


def example(cmd: dict[str, Any]) -> dict[str, Any]:
    """``GET /example/users`` with ``key``: the in-process DRF authentication."""
    response = Client().get("/example/users", HTTP_AUTHORIZATION=f"Bearer {cmd['key']}")
    body = response.json()
    code = body["errors"][0]["code"] if "errors" in body else None
    return {"status": response.status_code, "code": code}


def get(cmd: dict[str, Any]) -> dict[str, Any]:
    response = _client().get(f"/api/v1/api_keys/{cmd['key_id']}")
    if response.status_code != 200:
        raise RuntimeError(f"get: {response.status_code} {response.content[:200]!r}")
    key = response.json()["api_key"]
    return {k: key[k] for k in ("verification_count", "last_verified_on", "status")}


def list_(cmd: dict[str, Any]) -> dict[str, Any]:
    response = _client().get("/api/v1/api_keys", {"org_code": cmd["org_code"]})
    if response.status_code != 200:
        raise RuntimeError(f"list: {response.status_code} {response.content[:200]!r}")
    (key,) = [k for k in response.json()["api_keys"] if k["id"] == cmd["key_id"]]
    return {k: key[k] for k in ("verification_count", "last_verified_on", "status")}


def revoke(cmd: dict[str, Any]) -> dict[str, Any]:
    key = ApiKey.objects.get(pk=cmd["key_id"])
    services.api_key_revoke(api_key=key, actor=services.Actor.system())
    return {"ok": True}


def rotate(cmd: dict[str, Any]) -> dict[str, Any]:
    key = ApiKey.objects.get(pk=cmd["key_id"])
    issued = services.api_key_rotate(
        api_key=key, grace_seconds=cmd.get("grace", 0), actor=services.Actor.system()
    )
    return {"key": issued.plaintext}


def bulk_issue(cmd: dict[str, Any]) -> dict[str, Any]:
    """Bulk-issue ``count`` keys (COPY on PostgreSQL) for the API of ``org_code``'s key and
    verify every one of them through the service."""
    from apikeys.bulk import api_key_bulk_issue
    from apikeys.models import Organization

    organization = Organization.objects.get(code=cmd["org_code"])
    api = ApiKey.objects.get(pk=cmd["key_id"]).api
    made = api_key_bulk_issue(
        api=api,
        count=cmd["count"],
        organizations=[organization],
        scopes=["read:users"],
        sample=cmd["count"],
        batch_size=cmd.get("batch_size", 20_000),
        actor=services.Actor.system(),
    )
    verified = [
        services.api_key_verify(key=s.plaintext, audience=api.audience) for s in made.sample
    ]
    ids = [s.key_id for s in made.sample]
    return {
        "codes": sorted({v.code for v in verified}),
        "scopes": sorted({" ".join(v.scopes) for v in verified}),
        "ids_match": [v.key_id for v in verified] == ids,
        "scope_rows": ApiKey.scopes.through.objects.filter(apikey_id__in=ids).count(),
        "rows": ApiKey.objects.filter(pk__in=ids, org_code=organization.code).count(),
    }


def verify_prepared(cmd: dict[str, Any]) -> dict[str, Any]:
    """Allow prepared statements on this worker's connection (what the setting
    ``OPTIONS["prepare_threshold"]`` does), verify ``n`` times, and list the statements
    PostgreSQL holds prepared for this connection."""
    connection.ensure_connection()
    connection.connection.prepare_threshold = cmd.get("threshold", 1)
    try:
        counts = [
            services.api_key_verify(key=cmd["key"]).verification_count for _ in range(cmd["n"])
        ]
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cursor.fetchall()]
    finally:
        connection.connection.prepare_threshold = None
    return {"counts": counts, "prepared": prepared}


COMMANDS = {
    "prepared": verify_prepared,
    "bulk": bulk_issue,
    "setup": setup,
    "token": token,
    "verify_http": verify_http,
    "verify_threads": verify_threads,
    "example": example,
    "get": get,
    "list": list_,
    "revoke": revoke,
    "rotate": rotate,
}


def main() -> None:
    print(json.dumps({"ready": True, "vendor": connection.vendor}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "close":
            break
        try:
            answer = COMMANDS[cmd["op"]](cmd)
        except Exception:  # noqa: BLE001 - the test shows it
            answer = {"error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)
    connection.close()


if __name__ == "__main__":
    main()
