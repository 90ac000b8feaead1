"""The contract's error body, and the one exception handler that produces it.

Every 4xx under ``/api/v1/`` is ``{"errors": [{"code", "message", "field"?}]}``. Domain errors
(``apikeys.exceptions``) carry their code; DRF's own exceptions are given stable codes here.
A lost database is a coded 503; an unexpected exception is logged (without the request
body, which may hold a key) and answered with a coded 500 in JSON, never an HTML page.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from apikeys import crypto
from apikeys import exceptions as domain

logger = logging.getLogger("apikeys.api")


class ApiError(drf.APIException):
    """An API-layer error with an explicit status and code (e.g. an unknown id in the path)."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def not_found(code: str, message: str) -> ApiError:
    return ApiError(status=HTTPStatus.NOT_FOUND, code=code, message=message)


def bad_request(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(status=HTTPStatus.BAD_REQUEST, code=code, message=message, field=field)


def error_body(errors: list[dict[str, str]]) -> dict[str, Any]:
    return {"errors": errors}


# Error messages and field names quote what the client sent (an unknown field name, a bad
# choice); a key pasted into the wrong place must not come back in an error body, which
# clients and proxies log. The one key-shaped pattern lives in crypto (logs use it too).
redact = crypto.redact_keys


def entry(code: str, message: str, field: str | None = None) -> dict[str, str]:
    item = {"code": code, "message": redact(message)}
    if field:
        item["field"] = redact(field)
    return item


# DRF field error codes → the contract's codes. Uppercase codes raised by our own
# validators pass through unchanged.
_FIELD_CODES = {
    "required": "FIELD_REQUIRED",
}


def _flatten(detail: Any, field: str | None = None) -> list[dict[str, str]]:
    """DRF's nested error detail as a flat list of entries, each naming its field as a
    dotted path (``users.0.id``); errors of the whole body name no field."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = field
            else:
                name = f"{field}.{key}" if field else str(key)
            out.extend(_flatten(value, name))
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            for problem in _flatten(item, field):
                if problem not in out:  # one entry per distinct problem
                    out.append(problem)
        return out
    code = getattr(detail, "code", None) or "invalid"
    if not str(code).isupper():
        code = _FIELD_CODES.get(code, "INVALID_FIELD" if field else "INVALID_REQUEST")
    return [entry(str(code), str(detail), field)]


_DRF_CODES: list[tuple[type[Exception], str]] = [
    (drf.ParseError, "INVALID_JSON"),
    (drf.NotAuthenticated, "UNAUTHENTICATED"),
    (drf.AuthenticationFailed, "INVALID_TOKEN"),
    (drf.PermissionDenied, "FORBIDDEN"),
    (drf.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (drf.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    (drf.NotAcceptable, "NOT_ACCEPTABLE"),
    (drf.Throttled, "RATE_LIMITED"),
    (drf.NotFound, "ROUTE_NOT_FOUND"),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler of the Management API (set per view, not globally)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        status, errors = exc.status_code, [entry(exc.code, exc.message, exc.field)]
        headers = dict(exc.headers)
    elif isinstance(exc, domain.ApiKeysError):
        # A domain "not found" always concerns an id given in the body (ids in the path are
        # looked up by the views and answered with ``not_found``): the contract makes it 400.
        status = HTTPStatus.BAD_REQUEST if isinstance(exc, domain.NotFound) else exc.status
        errors = [entry(exc.code, exc.message, exc.field)]
    elif isinstance(exc, drf.ValidationError):
        status, errors = HTTPStatus.BAD_REQUEST, _flatten(exc.detail)
    elif isinstance(exc, Http404):
        status, errors = HTTPStatus.NOT_FOUND, [entry("ROUTE_NOT_FOUND", "No such route.")]
    elif isinstance(exc, drf.APIException):
        status = exc.status_code
        code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "INVALID_REQUEST")
        message = (
            str(exc.detail) if not isinstance(exc.detail, (list, dict)) else "Invalid request."
        )
        if isinstance(exc, drf.ParseError):
            message = "The body is not valid JSON."
        errors = [entry(code, message)]
        # ``wait`` is set by Throttled.__init__ but missing from the DRF stubs.
        throttle_wait: float | None = getattr(exc, "wait", None)
        if isinstance(exc, drf.Throttled) and throttle_wait is not None:
            wait = str(max(1, int(throttle_wait + 0.999)))
            headers = {"Retry-After": wait, "RateLimit-Reset": wait}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable: say so, and never answer "valid" from memory.
        logger.warning("Database unavailable: %s", type(exc).__name__)
        status = HTTPStatus.SERVICE_UNAVAILABLE
        errors = [entry("SERVICE_UNAVAILABLE", "The service is temporarily unavailable.")]
        headers = {"Retry-After": "5"}
    elif isinstance(exc, IntegrityError):
        # A constraint the services check first, broken by a concurrent change between the
        # check and the write (the services name the races they know). Its message can
        # quote column values: only the type is logged.
        logger.warning("Write refused by a database constraint: %s", type(exc).__name__)
        status = HTTPStatus.CONFLICT
        errors = [entry("CONFLICT", "The request conflicted with a concurrent change; retry it.")]
    else:
        logger.exception("Unexpected error in the Management API")
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        errors = [entry("INTERNAL_ERROR", "Something went wrong on our side.")]
    return Response(error_body(errors), status=status, headers=headers)


def json_error(status: int, code: str, message: str) -> JsonResponse:
    """A contract error body outside DRF (URL fallbacks, middleware)."""
    return JsonResponse(error_body([entry(code, message)]), status=status)
