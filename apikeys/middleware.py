"""Guards for every request, before any view runs.

- ``RejectNulMiddleware``: no NUL character in a URL. PostgreSQL refuses NUL in text where
  SQLite stores it, so an id or filter value with a NUL in it reaches the database as an
  error (a 500) on one backend and as a harmless miss on the other. None of our ids, codes
  or filter values can contain one, so a URL with a NUL is refused at the door, once for
  the Management API, the portal and the admin alike.
- ``DisallowedHostMiddleware``: a ``Host`` outside ``ALLOWED_HOSTS`` is answered in JSON by
  the Management API (the contract's error body) and by the token endpoint (OAuth's),
  where Django would send its HTML 400 page. Everything else keeps Django's answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.urls import Resolver404, resolve

from apikeys.http import NUL


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The same answers as the Management API's own guard (for host projects without
        # this middleware): a path that cannot name anything is a 404, a query a 400.
        api = "/api/" in request.path
        if NUL in request.path:
            if api:
                return _json(HTTPStatus.NOT_FOUND, "ROUTE_NOT_FOUND", "No such route.")
            return HttpResponseNotFound("No such page.")
        if any(
            NUL in name or any(NUL in value for value in values)
            for name, values in request.GET.lists()
        ):
            message = "Query parameters cannot contain NUL characters."
            if api:
                return _json(HTTPStatus.BAD_REQUEST, "INVALID_QUERY", message)
            return HttpResponseBadRequest(message)
        return self.get_response(request)


class DisallowedHostMiddleware:
    """A JSON 400 for a ``Host`` the service does not serve, under the Management API and
    the token endpoint (their clients parse JSON, never an HTML page).

    List it **first** in ``MIDDLEWARE``, before ``SecurityMiddleware``: that one reads the
    host itself when ``SECURE_SSL_REDIRECT`` is on (and ``CommonMiddleware`` always does),
    and the exception would become Django's HTML 400 before a later middleware could speak.
    Its answer therefore does not pass through ``SecurityMiddleware``, so it sets
    ``nosniff`` itself. The refusal is logged as Django logs it
    (``django.security.DisallowedHost``), so alerts on that logger keep working.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost as exc:
            answer = _host_refusal(request)
            if answer is not None:
                logging.getLogger("django.security.DisallowedHost").error(
                    str(exc), extra={"status_code": 400, "request": request}
                )
                answer["X-Content-Type-Options"] = "nosniff"
                return answer
        return self.get_response(request)


def _host_refusal(request: HttpRequest) -> HttpResponse | None:
    """The JSON answer for the route the request names, or None outside our JSON routes
    (found by resolving, so that a host project's own prefixes are honoured)."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    message = "This service does not serve the host the request named."
    if "apikeys-api" in match.app_names:
        return _json(HTTPStatus.BAD_REQUEST, "INVALID_HOST", message)
    # The token endpoint (ManagementTokenView, or a host project's subclass) says so itself.
    if getattr(getattr(match.func, "view_class", None), "answers_oauth_errors", False):
        return HttpResponse(
            json.dumps({"error": "invalid_request", "error_description": message}),
            status=HTTPStatus.BAD_REQUEST,
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
    return None


def _json(status: int, code: str, message: str) -> HttpResponse:
    from apikeys.api.errors import json_error

    return json_error(status, code, message)
