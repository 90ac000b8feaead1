"""``POST /oauth2/token``: django-oauth-toolkit's token endpoint, narrowed to the contract.

Only the client-credentials grant is offered (any other is ``unsupported_grant_type``), and
an ``audience``, when given, must be the Management API's. Everything else (client
authentication, scope narrowing, ``invalid_scope``, expiry) is django-oauth-toolkit's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.views import TokenView

from apikeys import conf

logger = logging.getLogger("apikeys.api")


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


@method_decorator(csrf_exempt, name="dispatch")
class ManagementTokenView(TokenView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        grant_type = request.POST.get("grant_type")
        if not grant_type:
            return _oauth_error("invalid_request", "grant_type is required.")
        if grant_type != "client_credentials":
            return _oauth_error("unsupported_grant_type", "Only client_credentials is supported.")
        audience = request.POST.get("audience")
        if audience is not None and audience.rstrip("/") != management_audience(request):
            return _oauth_error("invalid_request", "Unknown audience.")
        try:
            return super().post(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            # The database is unreachable: an OAuth-shaped JSON 503 a client can retry on,
            # not Django's HTML 500 page.
            logger.warning("Database unavailable: %s", type(exc).__name__)
            response = _oauth_error("temporarily_unavailable", "The service is temporarily unavailable.", 503)
            response["Retry-After"] = "5"
            return response
