"""Secrets hygiene of the deployed service: gunicorn (access log on, Django logging at
DEBUG) on a throwaway PostgreSQL, driven over HTTP through the Management API, the
example API and the portal. Afterwards, no key, client secret or password is in the
server's log, PostgreSQL's log, or any table (sessions decoded with the server's key).

The one-time portal link's token is in the URL by design (a link has to carry it): it may
appear only in the access-log lines of ``/portal/link/``, it is stored only as a digest,
and it is dead once used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from apikeys import crypto
from tests.reliability.platform import Platform
from tests.security.scan import KEY_PATTERN
from tests.servers import Browser, Cluster, Service, production_env

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

PASSWORD = "Tr0ub4dor&3-correct-horse"


@pytest.fixture(scope="module")
def platform(cluster: Cluster) -> Iterator[Platform]:
    database_url = cluster.fresh_database()
    service = Service(env=production_env(DATABASE_URL=database_url, LOG_LEVEL="DEBUG"), workers=2)
    service.start()
    try:
        yield Platform(service, database_url, cluster)
    finally:
        service.stop()


def hidden_part(key: str) -> str:
    return key[crypto.DISPLAY_PREFIX_LENGTH : -crypto.DISPLAY_SUFFIX_LENGTH]


def database_text(platform: Platform, secret_key: str) -> str:
    """Every row of every table of the service's database, sessions decoded."""
    from django.core import signing

    chunks: list[str] = []
    with platform.cluster.postgres.connect(platform.database) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        assert len(tables) >= 20
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                chunks.append(" ".join(str(v) for v in row))
        for (data,) in conn.execute("SELECT session_data FROM django_session").fetchall():
            chunks.append(
                repr(
                    signing.loads(
                        data,
                        key=secret_key,
                        salt="django.contrib.sessions.SessionStore",
                        serializer=signing.JSONSerializer,
                    )
                )
            )
    return "\n".join(chunks)


def test_no_secret_reaches_the_server_log_the_database_log_or_any_table(platform: Platform) -> None:
    service = platform.service
    keys: list[str] = []
    client_id, client_secret = service.m2m_app("verify:api_keys", name="Verifier")
    verifier = service.token(client_id, client_secret)
    # Keys issued, verified, rotated (with grace), verified, revoked, over the Management API.
    for name in ("Backend", "Reporting"):
        keys.append(platform.issue_key(name)[1])
    key_id = platform.call("GET", "/api/v1/api_keys")["api_keys"][0]["id"]
    for key in keys:
        assert service.request(
            "POST", "/api/v1/api_keys/verify", {"api_key": key}, token=verifier
        ).json()["is_valid"]
    rotated = platform.call("PUT", f"/api/v1/api_keys/{key_id}", {"expire_previous_in": 60})[
        "api_key"
    ]["key"]
    keys.append(rotated)
    for key in keys:
        service.request("POST", "/api/v1/api_keys/verify", {"api_key": key}, token=verifier)
    platform.call("DELETE", f"/api/v1/api_keys/{key_id}")
    assert (
        service.request(
            "GET", "/example/users", headers={"Authorization": f"Bearer {rotated}"}
        ).status
        == 401
    )
    # A refused verification and a malformed one are logged (as failures) without the key.
    service.request("POST", "/api/v1/api_keys/verify", {"api_key": keys[0] + "x"}, token=verifier)

    # The portal: a one-time link, a key created and rotated there, a password sign-in.
    user_id = platform.member("ada@example.com")
    link = platform.portal_link(user_id)
    tab = Browser(service)
    assert tab.get(link).status_code == HTTPStatus.OK
    assert tab.submit(link).headers["Location"] == "/portal/keys/"
    tab.get("/portal/keys/new/")
    created = tab.submit(
        "/portal/keys/new/", {"name": "Portal key", "api": platform.api_id, **_form_token(tab)}
    )
    assert created.status_code == HTTPStatus.OK, created.status_code
    keys.append(KEY_PATTERN.findall(created.text)[0])
    portal_key_id = re.search(r"/portal/keys/(api_key_[0-9a-f]{32})/", created.text).group(1)
    tab.get(f"/portal/keys/{portal_key_id}/rotate/")
    rotated_page = tab.submit(
        f"/portal/keys/{portal_key_id}/rotate/", {"grace_seconds": "0", **_form_token(tab)}
    )
    keys.append(KEY_PATTERN.findall(rotated_page.text)[0])
    # A used link is dead.
    again = Browser(service)
    assert again.get(link).headers["Location"] == "/portal/login/"
    _set_password(platform, "ada@example.com")
    signing_in = Browser(service)
    signing_in.get("/portal/login/")
    signing_in.submit("/portal/login/", {"username": "ada@example.com", "password": PASSWORD + "?"})
    assert (
        signing_in.submit(
            "/portal/login/", {"username": "ada@example.com", "password": PASSWORD}
        ).status_code
        == 302
    )

    token = link.rstrip("/").rsplit("/", 1)[1]
    secrets = [hidden_part(k) for k in keys] + [client_secret, PASSWORD]
    server_log = service.log_text()
    postgres_log = platform.cluster.postgres.log.read_text(errors="replace")
    tables = database_text(platform, service.env["SECRET_KEY"])

    assert len(set(keys)) == 5
    assert server_log.count("POST /api/v1/api_keys/verify") >= 8, "the access log was on"
    for secret in secrets:
        assert secret not in server_log
        assert secret not in postgres_log
        assert secret not in tables
    # The link's token: only in the access log's lines for the link itself, never stored.
    assert token not in tables and token not in postgres_log
    assert all("/portal/link/" in line for line in server_log.splitlines() if token in line)
    print(
        f"\nserver secrets hygiene: {len(secrets)} secrets, {len(server_log.splitlines())} server log lines, "
        f"{len(postgres_log.splitlines())} PostgreSQL log lines, {len(tables.splitlines())} rows: none found"
    )


def _form_token(tab: Browser) -> dict[str, Any]:
    match = re.search(r'name="form_token" value="([^"]+)"', tab.page)
    assert match, "the form carries its single-submit token"
    return {"form_token": match.group(1)}


def _set_password(platform: Platform, email: str) -> None:
    code = (
        "from django.contrib.auth import get_user_model\n"
        f"u = get_user_model().objects.get(email={email!r})\n"
        f"u.set_password({PASSWORD!r})\n"
        "u.save()\n"
    )
    from tests.servers import manage

    manage(platform.service.env, "shell", "-c", code)
