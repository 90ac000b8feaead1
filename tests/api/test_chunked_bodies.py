"""Chunked request bodies against the deployed server: gunicorn (sync workers, DEBUG off) on a
throwaway PostgreSQL, sent over a raw socket with ``Transfer-Encoding: chunked`` and no
``Content-Length``. gunicorn de-chunks the body and says so (``wsgi.input_terminated``), so
the Management API reads it whole: never as empty, and under the same size, media-type
and field rules as a body with a length.

(Servers that cannot give such a body answer 411: tests/api/test_transport.py.)
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from tests.reliability.platform import Platform
from tests.servers import (
    HOST,
    REQUEST_TIMEOUT,
    Cluster,
    Response,
    Service,
    cluster,  # noqa: F401  (a fixture)
    production_env,
)

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]


@pytest.fixture(scope="module")
def platform(cluster: Cluster) -> Iterator[Platform]:  # noqa: F811
    database_url = cluster.fresh_database()
    service = Service(env=production_env(DATABASE_URL=database_url), workers=2)
    service.start()
    try:
        yield Platform(service, database_url, cluster)
    finally:
        service.stop()


def send_chunked(
    service: Service,
    method: str,
    path: str,
    body: bytes,
    *,
    token: str,
    content_type: str = "application/json",
    chunk_size: int = 7,
) -> Response:
    """One request on a raw socket, its body cut into chunks (and no Content-Length)."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{service.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + chunk_size]), body[i : i + chunk_size])
        for i in range(0, len(body), chunk_size)
    )
    with socket.create_connection((HOST, service.port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(head + chunks + b"0\r\n\r\n")
        received = b""
        while data := sock.recv(65536):
            received += data
    return parse_response(received)


def parse_response(raw: bytes) -> Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Response(int(lines[0].split()[1]), headers, body)


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out, body = out + rest[:size], rest[size + 2 :]


def verify(platform: Platform, key: str) -> Any:
    return platform.call("POST", "/api/v1/api_keys/verify", {"api_key": key})


def test_a_chunked_rotation_keeps_its_grace_period(platform: Platform) -> None:
    key_id, old_secret = platform.issue_key("Rotated with grace, chunked")
    answer = send_chunked(
        platform.service,
        "PUT",
        f"/api/v1/api_keys/{key_id}",
        json.dumps({"expire_previous_in": 3600}).encode(),
        token=platform.admin,
    )
    assert answer.status == HTTPStatus.CREATED, answer.body
    new_secret = answer.json()["api_key"]["key"]
    assert verify(platform, old_secret)["is_valid"] is True
    assert verify(platform, new_secret)["is_valid"] is True


def test_a_chunked_create_is_read_whole(platform: Platform) -> None:
    body = {
        "name": "Created chunked",
        "api_id": platform.api_id,
        "scope_ids": ["read:orders"],
        "org_code": platform.org_code,
    }
    answer = send_chunked(
        platform.service,
        "POST",
        "/api/v1/api_keys",
        json.dumps(body).encode(),
        token=platform.admin,
    )
    assert answer.status == HTTPStatus.CREATED, answer.body
    assert verify(platform, answer.json()["api_key"]["key"])["scopes"] == ["read:orders"]


@pytest.mark.parametrize(
    "body, content_type, status, code",
    [
        (
            b"expire_previous_in=3600",
            "text/plain",
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            b'{"expire_previous_in": 3600, "typo": 1}',
            "application/json",
            HTTPStatus.BAD_REQUEST,
            "UNKNOWN_FIELD",
        ),
        (
            b'{"a": "' + b"x" * (70 * 1024) + b'"}',
            "application/json",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "REQUEST_TOO_LARGE",
        ),
    ],
)
def test_a_chunked_body_meets_the_same_checks_and_rotates_nothing(
    platform: Platform, body: bytes, content_type: str, status: int, code: str
) -> None:
    key_id, secret = platform.issue_key("Not rotated")
    answer = send_chunked(
        platform.service,
        "PUT",
        f"/api/v1/api_keys/{key_id}",
        body,
        token=platform.admin,
        content_type=content_type,
        chunk_size=4096,
    )
    assert answer.status == status, answer.body
    assert [e["code"] for e in answer.json()["errors"]] == [code]
    assert verify(platform, secret)["is_valid"] is True
    assert platform.call("GET", f"/api/v1/api_keys/{key_id}")["api_key"]["rotated_on"] is None
