"""HTTP helpers shared by every entry point that sees a request: the DRF authentication
class, the Management API and the portal.

Keep this module free of views and of database code: it only reads requests.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from apikeys import conf

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request


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
        address = _normalised(last_hop)
        if address is not None:
            return address
    return _normalised(request.META.get("REMOTE_ADDR", ""))


def _normalised(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
