"""The fallback of ``/api/v1/``: any unknown route, whatever the method, is a JSON 404
``ROUTE_NOT_FOUND`` in the contract's error body, never Django's HTML page.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apikeys.api.errors import json_error


# Exempt from CSRF like every DRF view of the API (which is token-authenticated, never
# cookie-authenticated): otherwise a POST to a mistyped path would meet Django's HTML CSRF
# page before this JSON 404.
@csrf_exempt
def route_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any unknown route under /api/v1/, whatever the method: JSON, never an HTML page."""
    return json_error(HTTPStatus.NOT_FOUND, "ROUTE_NOT_FOUND", "No such route.")
