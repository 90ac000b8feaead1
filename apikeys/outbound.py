"""Outbound HTTP to webhook endpoints, refusing private targets.

Rules:

- Only ``http`` and ``https`` URLs with a host; no user and password in the URL.
- Every address the host resolves to must be public (not private, loopback, link-local,
  shared, reserved or multicast) unless private targets are allowed. The check is made
  again at every delivery and the connection goes to the very address that was checked
  (TLS still verifies the host's name), so a DNS answer that changes after the check
  (DNS rebinding) cannot reach a private address.
- Redirects are not followed: a 3xx is an answer like any other non-2xx.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

# How much of an answer's body is kept (shown in the admin as the last response).
RESPONSE_KEPT_BYTES = 1024


class TargetRefused(ValueError):
    """The URL or one of its host's addresses is not allowed; the message says why."""


class SendFailed(Exception):
    """No HTTP answer: connection refused, timeout, TLS error…; the message says which."""


@dataclass(frozen=True)
class Answer:
    status: int
    body_start: str


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an acceptable endpoint URL, else ``TargetRefused``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("The endpoint URL is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("The endpoint URL must start with https:// or http://.")
    if not parts.hostname:
        raise TargetRefused("The endpoint URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The endpoint URL must not carry a user name or password.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host``, every one of them allowed, else ``TargetRefused``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # gaierror is an OSError; NUL: ValueError
        raise TargetRefused(f"The endpoint's host {host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetRefused(f"The endpoint's host {host!r} does not resolve.")
    if not allow_private and not all(_public(a) for a in addresses):
        raise TargetRefused("The endpoint resolves to a private, loopback or link-local address.")
    return addresses


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse (``TargetRefused``) a URL that :func:`post` would refuse."""
    _scheme, host, port = check_url(url)
    resolve(host, port, allow_private=allow_private)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to one checked address, whatever the host's name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the host's name (SNI too)."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    url: str, *, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool
) -> Answer:
    """POST ``body`` to ``url``; the answer, or ``TargetRefused`` / ``SendFailed``.

    ``timeout`` bounds the whole exchange (an answer that takes longer is a failure)."""
    scheme, host, port = check_url(url)
    address = resolve(host, port, allow_private=allow_private)[0]
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    started = time.monotonic()
    connection = connection_class(host, port, address=address, timeout=timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        kept = response.read(RESPONSE_KEPT_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
    finally:
        connection.close()
    if time.monotonic() - started > timeout:
        raise SendFailed(f"No complete answer within {timeout:g} seconds.")
    return Answer(status=status, body_start=kept.decode("utf-8", "replace"))
