"""The headers portal responses send (the caller's IP comes from ``apikeys.http.client_ip``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers

# Every portal page: scripts and styles only from our own origin (there is no inline script
# in any template, so an injected <script> cannot run), forms may post only back to us,
# and no one may frame us (on top of X-Frame-Options: DENY from the settings).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def add_portal_headers(response: HttpResponse) -> HttpResponse:
    """The security headers of every portal response."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def add_no_store_headers(response: Any) -> Any:
    """For a page that shows a secret or carries a one-time token: never cached, by the
    browser (back button, disk cache) or by anything in between; and no Referer header
    that could carry the page's URL elsewhere."""
    add_never_cache_headers(response)  # Cache-Control: max-age=0, no-cache, no-store, …
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
