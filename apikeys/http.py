"""HTTP helpers shared by every entry point that sees a request: the DRF authentication
class, the Management API and the portal.

Keep this module free of views and of database code: it only reads requests.
"""

from __future__ import annotations

import io
import ipaddress
from functools import lru_cache
from typing import TYPE_CHECKING

from apikeys import conf

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request

#: The character no URL, id, code or filter value of ours may hold (PostgreSQL refuses it in
#: text): the middleware refuses it in paths, the admin in its filter values.
NUL = "\x00"


def client_ip(request: HttpRequest | Request) -> str | None:
    """The caller's IP address, normalised (``"2001:db8::1"``), or ``None`` when unknown.

    With ``APIKEYS["TRUST_X_FORWARDED_FOR"]`` off (the default) this is ``REMOTE_ADDR``:
    anyone can send an ``X-Forwarded-For`` header, so it is ignored.

    With it on, the service runs behind one reverse proxy you control, which appends the
    address it saw to ``X-Forwarded-For``. The *last* entry is therefore the one written by
    that proxy; every entry before it came from the client and may be forged, so taking the
    first one (a common mistake) would let a caller choose the IP recorded against a key.
    A last entry that is not an IP address falls back to ``REMOTE_ADDR``.

    Accepts Django's ``HttpRequest`` and DRF's ``Request`` alike (the latter proxies
    ``META``).
    """
    if conf.get("TRUST_X_FORWARDED_FOR"):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last_hop = forwarded.rsplit(",", 1)[-1]
        address = normalised_ip(last_hop)
        if address is not None:
            return address
    return normalised_ip(request.META.get("REMOTE_ADDR", ""))


def normalised_ip(value: str) -> str | None:
    """``value`` as a normalised IP address, or ``None``. Cached for short values: a
    service sees the same few addresses (its clients, its proxies) over and over, and
    parsing one costs more than the rest of reading the request; a long value (no address
    is, but a forged header can be) is parsed uncached so that it cannot fill the cache."""
    if len(value) > _CACHED_IP_LENGTH:
        return _parsed_ip(value)
    return _cached_ip(value)


_CACHED_IP_LENGTH = 64


def _parsed_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


_cached_ip = lru_cache(maxsize=4096)(_parsed_ip)


# --------------------------------------------------------------------------- bodies


class LengthRequired(Exception):
    """A body came without ``Content-Length`` and this server cannot give it in full."""


class BodyTooLarge(Exception):
    """A body without ``Content-Length`` turned out larger than the limit."""


class BodyUnreadable(Exception):
    """A body whose framing cannot be trusted (both ``Content-Length`` and
    ``Transfer-Encoding``) or that broke off while it was read."""


def read_unannounced_body(request: HttpRequest, *, limit: int) -> None:
    """Read in full a body that came without ``Content-Length``, or refuse it: never let it
    pass as empty.

    Django reads exactly ``CONTENT_LENGTH`` bytes of a body, and DRF takes a request without
    it as bodiless: a ``Transfer-Encoding: chunked`` body (or, under ASGI, an HTTP/2 body,
    which needs no length) is then silently empty, so a rotation asking for a grace period
    rotates without one. Where the server can give the whole body, it is read here (at
    most ``limit`` bytes, else :class:`BodyTooLarge`) and the request is made to look like
    one that announced its length; where it cannot, :class:`LengthRequired` (a 411).

    - WSGI: a server that de-chunks the body and ends ``wsgi.input`` with it says so with
      ``wsgi.input_terminated`` (gunicorn, mod_wsgi with ``WSGIChunkedRequest``). Without
      it (Django's ``runserver``, the test client), reading would return nothing or the
      raw chunk framing: 411.
    - ASGI: the handler has already received the whole body, framed or not.
    - Both ``Content-Length`` and ``Transfer-Encoding``: servers disagree on which one wins
      (the ground of request smuggling): :class:`BodyUnreadable`.
    """
    meta = request.META
    chunked = bool(meta.get("HTTP_TRANSFER_ENCODING"))
    if meta.get("CONTENT_LENGTH"):
        if chunked:
            raise BodyUnreadable("Content-Length and Transfer-Encoding together")
        return  # announced: Django reads it
    from django.core.handlers.asgi import ASGIRequest

    if isinstance(request, ASGIRequest):
        source = request._stream
    elif not chunked:
        return  # HTTP/1.1: neither Content-Length nor Transfer-Encoding means no body
    elif meta.get("wsgi.input_terminated"):
        source = meta["wsgi.input"]
    else:
        raise LengthRequired
    try:
        body = source.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - each server has its own errors for bad chunks
        raise BodyUnreadable(type(exc).__name__) from None
    if len(body) > limit:
        raise BodyTooLarge
    # As HttpRequest.body leaves a request it has read: the bytes kept, a fresh stream.
    meta["CONTENT_LENGTH"] = str(len(body))
    request._body = body
    request._stream = io.BytesIO(body)
    # A private flag of HttpRequest that django-stubs does not declare.
    request._read_started = False  # type: ignore[attr-defined]
