"""A guard for every request: no NUL character in a URL.

PostgreSQL refuses NUL in text where SQLite stores it, so an id or filter value with a NUL
in it reaches the database as an error (a 500) on one backend and as a harmless miss on the
other. None of our ids, codes or filter values can contain one, so a URL with a NUL is
refused at the door, once for the Management API, the portal and the admin alike.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound

NUL = "\x00"


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


def _json(status: int, code: str, message: str) -> HttpResponse:
    from apikeys.api.errors import json_error

    return json_error(status, code, message)
