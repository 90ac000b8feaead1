"""Secrets hygiene of the deployed service: gunicorn (access log on, Django logging at
DEBUG) on a throwaway PostgreSQL, driven over HTTP through the Management API, the
example API and the portal. Afterwards, no key, client secret or password is in the
server's log, PostgreSQL's log, or any table (sessions decoded with the server's key).

Secrets typed into URLs are not logged either: a key in a path (``/api/v1/api_keys/<key>``,
``/example/users/<key>``), a client secret or an access token in a query string, a key in a
malformed request line (gunicorn's error log), a portal link's token (in the URL by design:
a link has to carry it) in the access log, the ``Referer`` of the next page, or a dead link's
"Not Found". The link's token is stored only as a digest, and is dead once used.

And ``make run``'s server (runserver, DEBUG on) writes each line once, with the same secrets
redacted.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from apikeys import crypto
from tests.reliability.platform import Platform
from tests.security.scan import KEY_PATTERN
from tests.servers import (
    HOST,
    PYTHON,
    ROOT,
    Browser,
    Cluster,
    Service,
    free_port,
    port_open,
    production_env,
    wait_for,
)

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

    # Secrets typed into URLs: every request below is refused, and logged.
    _secrets_in_urls(platform, keys[0], token, client_id, client_secret, verifier)

    secrets = [hidden_part(k) for k in keys] + [client_secret, PASSWORD, token, verifier]
    server_log = service.log_text()
    postgres_log = platform.cluster.postgres.log.read_text(errors="replace")
    tables = database_text(platform, service.env["SECRET_KEY"])

    assert len(set(keys)) == 5
    assert server_log.count("POST /api/v1/api_keys/verify") >= 8, "the access log was on"
    leaked = [
        f"{where}: {secret[:6]}…"
        for secret in secrets
        for where, text in (
            ("server log", server_log),
            ("PostgreSQL log", postgres_log),
            ("tables", tables),
        )
        if secret in text
    ]
    assert leaked == []
    assert "Not Found: /api/v1/api_keys/k_live_[redacted]" in server_log, "Django's log was on"
    assert "Invalid request from ip=" in server_log, "gunicorn's error log was on"
    print(
        f"\nserver secrets hygiene: {len(secrets)} secrets, {len(server_log.splitlines())} server log lines, "
        f"{len(postgres_log.splitlines())} PostgreSQL log lines, {len(tables.splitlines())} rows: none found"
    )


def _secrets_in_urls(
    platform: Platform,
    key: str,
    link_token: str,
    client_id: str,
    client_secret: str,
    access_token: str,
) -> None:
    """Requests that carry a secret in their URL, their request line or their Referer."""
    service = platform.service
    link = f"/portal/link/{link_token}/"
    for path in (f"/api/v1/api_keys/{key}", f"/api/v1/{key}"):
        assert platform.service.request("GET", path, token=platform.admin).status == 404
    assert service.request("DELETE", f"/api/v1/api_keys/{key}", token=platform.admin).status == 404
    assert service.request("GET", f"/example/users/{key}").status == 404
    assert service.request("GET", f"/example/users?api_key={key}").status in (400, 401)
    # A used link, a mangled one (Not Found), and the link as the Referer of another page.
    assert service.request("GET", link).status == 302
    assert service.request("GET", link + "again/").status == 404
    referred = service.request(
        "GET", "/portal/login/", headers={"Referer": f"http://127.0.0.1{link}"}
    )
    assert referred.status == 200
    # A client's credentials in a query string (the contract wants them in the body).
    refused = service.request(
        "POST",
        f"/oauth2/token?client_id={client_id}&client_secret={client_secret}",
        form={"grant_type": "client_credentials"},
    )
    assert refused.status in (400, 401), refused.status
    assert service.request("GET", f"/api/v1/api_keys?access_token={access_token}").status in (
        400,
        401,
    )
    # A malformed request line, which gunicorn refuses and reports in its error log.
    with socket.create_connection((HOST, service.port), timeout=30) as raw:
        raw.sendall(f"GET /api/v1/api_keys/{key} HTTP/1.1 {key}\r\nHost: x\r\n\r\n".encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")


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


def test_make_run_logs_each_line_once_and_no_secret(cluster: Cluster) -> None:
    """``make run``'s server: runserver with DEBUG on (its own request lines, Django's "Not
    Found" warnings). A key, a portal link token and a client secret in URLs are redacted,
    and every line is printed once (issue 14: Django's records were printed twice)."""
    key = crypto.generate_key()
    link_token = "Zk9" + "x" * 40
    client_secret = "cs-" + "y" * 60
    port = free_port()
    env = production_env(DATABASE_URL=cluster.fresh_database(), DEBUG="true", LOG_LEVEL="INFO")
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed after the server stops)
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), "runserver", "--noreload", f"{HOST}:{port}"],
        env=env,
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: process.poll() is not None or port_open(port), what="runserver")
        assert process.poll() is None, "runserver started"
        for path in (
            f"/api/v1/api_keys/{key}",
            f"/example/users/{key}",
            f"/portal/link/{link_token}/",
            f"/portal/link/{link_token}/again/",
            f"/oauth2/token?client_secret={client_secret}",
        ):
            connection = http.client.HTTPConnection(HOST, port, timeout=60)
            try:
                connection.request("GET", path)
                connection.getresponse().read()
            finally:
                connection.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    output.seek(0)
    log = output.read().decode(errors="replace")
    output.close()

    assert [s for s in (key[7:], link_token, client_secret) if s in log] == [], log
    assert log.count('"GET /api/v1/api_keys/k_live_[redacted] HTTP/1.1" 401') == 1, log
    assert log.count("Unauthorized: /api/v1/api_keys/k_live_[redacted]") == 1, log
    assert log.count("Not Found: /example/users/k_live_[redacted]") == 1, log
    assert log.count("Not Found: /portal/link/[redacted]/again/") == 1, log
