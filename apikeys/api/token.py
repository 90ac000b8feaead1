"""``POST /oauth2/token``: django-oauth-toolkit's token endpoint, narrowed to the contract.

Rules:

- only the client-credentials grant is offered (any other is ``unsupported_grant_type``),
  and an ``audience``, when given, must be the Management API's;
- the body is a UTF-8 form: any other charset is ``invalid_request`` (JSON, never Django's
  HTML 400 page);
- every error is OAuth-shaped JSON with an ``error_description`` (RFC 6749 §5.2);
- failed client authentications are counted per ``client_id`` and per client IP
  (``APIKEYS["TOKEN_FAILURE_LIMIT"]``, ``…_PER_IP``, ``…_WINDOW``); past either limit a
  further *failure* answers 429 with ``Retry-After``. A correct secret is never refused:
  secrets are ~238 random bits, so guessing is hopeless anyway, and refusing correct
  secrets would let anyone who knows a client id lock its service out. The limit keeps
  guessers from costing the service work and log noise. Unknown client ids count the same
  as known ones, so a 429 says nothing about which ids exist.

Client authentication itself (one query, a keyed digest, disabled applications refused),
scope narrowing, ``invalid_scope`` and expiry are django-oauth-toolkit's, with
:class:`apikeys.oauth.ManagementOAuth2Validator`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.views import TokenView

from apikeys import conf
from apikeys.http import client_ip
from apikeys.oauth import basic_credentials
from apikeys.ratelimit import record_failure

logger = logging.getLogger("apikeys.api")

# What each OAuth error means here, for errors django-oauth-toolkit (oauthlib) sends bare.
ERROR_DESCRIPTIONS = {
    "invalid_client": "Client authentication failed.",
    "invalid_scope": "A requested scope is not granted to this application.",
    "invalid_request": "The token request is malformed.",
    "unsupported_grant_type": "Only client_credentials is supported.",
    "unauthorized_client": "This application may not use this grant type.",
}


def management_audience(request: HttpRequest) -> str:
    configured = conf.get("MANAGEMENT_API_AUDIENCE")
    if configured:
        return str(configured).rstrip("/")
    return f"{request.scheme}://{request.get_host()}/api"


def _oauth_error(error: str, description: str, status: int = 400) -> HttpResponse:
    return HttpResponse(
        json.dumps({"error": error, "error_description": description}),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _is_utf8(charset: str) -> bool:
    # Django refuses a form whose charset it knows and is not exactly "utf-8" (with an HTML
    # page), and reads one it does not know as UTF-8: here both are refused alike.
    return charset.strip().lower() == "utf-8"


def _presented_client_id(request: HttpRequest) -> str:
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("Basic "):
        credentials = basic_credentials(auth[len("Basic ") :])
        return credentials[0] if credentials else ""
    return request.POST.get("client_id", "")


def _throttled_failure(request: HttpRequest) -> int | None:
    """Count one failed client authentication against its client id and its IP; the seconds
    to wait when either is past its limit, else None."""
    window = conf.get("TOKEN_FAILURE_WINDOW")
    waits = []
    client_id = _presented_client_id(request)
    if client_id:
        # Hashed: a client id is whatever the caller sent, and must fit a cache key.
        bucket = hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()[:32]
        waits.append(
            record_failure(
                f"token:client:{bucket}", limit=conf.get("TOKEN_FAILURE_LIMIT"), window=window
            )
        )
    waits.append(
        record_failure(
            f"token:ip:{client_ip(request) or 'unknown'}",
            limit=conf.get("TOKEN_FAILURE_LIMIT_PER_IP"),
            window=window,
        )
    )
    known = [w for w in waits if w is not None]
    return max(known) if known else None


def _with_description(response: HttpResponse) -> HttpResponse:
    """Add the ``error_description`` oauthlib leaves out (``invalid_client``,
    ``invalid_scope``), so every error carries one as the contract shows."""
    if response.status_code < 400:
        return response
    try:
        body = json.loads(response.content)
    except ValueError:
        return response
    if isinstance(body, dict) and "error" in body and not body.get("error_description"):
        body["error_description"] = ERROR_DESCRIPTIONS.get(
            str(body["error"]), "The token request was refused."
        )
        response.content = json.dumps(body).encode()
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ManagementTokenView(TokenView):
    #: Read by ``apikeys.middleware``: refusals on this route are OAuth's JSON error bodies.
    #: (A marker, so that the middleware needs no import of a view.)
    answers_oauth_errors = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        not_utf8 = _oauth_error("invalid_request", "The body must be a form encoded in UTF-8.")
        if not _is_utf8((request.content_params or {}).get("charset", "utf-8")):
            return not_utf8
        try:
            grant_type = request.POST.get("grant_type")
        except (BadRequest, UnicodeDecodeError):
            # Django refuses a form in a charset other than UTF-8 with its HTML 400 page.
            return not_utf8
        except RequestDataTooBig:
            return _oauth_error("invalid_request", "The body is too large.")
        if not grant_type:
            return _oauth_error("invalid_request", "grant_type is required.")
        if grant_type != "client_credentials":
            return _oauth_error("unsupported_grant_type", "Only client_credentials is supported.")
        audience = request.POST.get("audience")
        if audience is not None and audience.rstrip("/") != management_audience(request):
            return _oauth_error("invalid_request", "Unknown audience.")
        try:
            response = super().post(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            # The database is unreachable: an OAuth-shaped JSON 503 a client can retry on,
            # not Django's HTML 500 page.
            logger.warning("Database unavailable: %s", type(exc).__name__)
            response = _oauth_error(
                "temporarily_unavailable", "The service is temporarily unavailable.", 503
            )
            response["Retry-After"] = "5"
            return response
        if response.status_code == 401:
            wait = _throttled_failure(request)
            if wait is not None:
                # Still invalid_client: the credentials were checked and are wrong, which is
                # what the client must fix; 429 and Retry-After say when to try again.
                # (slow_down belongs to the device grant's polling, temporarily_unavailable
                # would blame the server.)
                throttled = _oauth_error(
                    "invalid_client", "Too many failed client authentications; retry later.", 429
                )
                throttled["Retry-After"] = str(wait)
                return throttled
        return _with_description(response)
