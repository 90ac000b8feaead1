"""What every Management API view shares: M2M token authentication, per-method scopes,
strict JSON in and out, the contract's errors and cursor pagination.

A query names only the parameters its view declares for the method (``query_parameters``,
the same list the OpenAPI document shows): any other is 400 ``UNKNOWN_PARAMETER``, so a
typo in a filter cannot silently widen a list.

A body is JSON of at most 64 KiB (413 past it), an object nested at most 32 levels deep
(400 ``INVALID_JSON`` past it) in which no object repeats a key (400 ``DUPLICATE_FIELD``:
with the last one winning, two clients reading the same body could each see another value).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.common import urldecode
from rest_framework import exceptions as drf
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.utils import json
from rest_framework.views import APIView

from apikeys import tokencache
from apikeys.api.errors import ApiError, bad_request, exception_handler
from apikeys.api.schema import ManagementAutoSchema
from apikeys.http import (
    BodyTooLarge,
    BodyUnreadable,
    LengthRequired,
    client_ip,
    read_unannounced_body,
)
from apikeys.services import Actor

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


class ManagementTokenAuthentication(OAuth2Authentication):
    """An OAuth 2.0 access token of an M2M application (django-oauth-toolkit).

    With Redis as the default cache, a token this worker has already accepted is taken from
    :mod:`apikeys.tokencache` (one Redis round trip, no query, no oauthlib request); every
    other case is django-oauth-toolkit's own check, unchanged, whose acceptances fill the
    cache. Rules that keep the two paths giving the same answers:

    - the cache only ever *accepts*: a miss, a stale entry, an expired token, Redis down,
      and every failure (no header, a malformed one, an unknown, expired or narrowed token,
      a disabled or deleted application) go to django-oauth-toolkit, so the 401s, their
      ``WWW-Authenticate`` challenges and the 403 ``INSUFFICIENT_SCOPE`` are its own;
    - a request is taken from the cache only if django-oauth-toolkit would read the same
      token from it and raise nothing: ``Authorization: Bearer <token>`` (oauthlib's
      reading), no ``access_token`` in the query, a query oauthlib can decode; the body is
      parsed as django-oauth-toolkit parses it (``request.POST``), with the same errors;
    - what the views get is what the database path gives: ``request.auth`` an
      ``AccessToken`` with its ``application`` (``scope`` narrowed to the grant, the
      application's other fields loaded only if read), ``request.user`` ``None``.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not tokencache.enabled():
            return super().authenticate(request)
        token = _cacheable_bearer_token(request)
        if token is None:
            return super().authenticate(request)
        cache = tokencache.get()
        checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        access_token = cache.lookup(checksum)
        if access_token is not None:
            return None, access_token
        snapshot = cache.fill_snapshot()  # before the query: see apikeys.tokencache
        result: tuple[Any, Any] | None = super().authenticate(request)
        if result is not None and snapshot is not None:
            cache.store(checksum, result[1], snapshot)
        return result


def _cacheable_bearer_token(request: Request) -> str | None:
    """The bearer token django-oauth-toolkit would read from ``request`` without raising,
    or ``None`` when its own path must run (and answer, or raise, as it does)."""
    # The order of django-oauth-toolkit's reading: the body (which may raise, as there)...
    request.POST  # noqa: B018 - parsed for its errors, as django-oauth-toolkit parses it
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None or "access_token" in request.GET:
        return None
    # ...then the host (DisallowedHost, as build_absolute_uri raises it)...
    request.get_host()
    # ...then oauthlib's decoding of the query, which refuses what it cannot decode...
    if request.META.get("QUERY_STRING") and not _oauthlib_decodes_query(request):
        return None
    # ...and its reading of the header (oauthlib.oauth2.rfc6749.tokens.get_token_from_header).
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def _oauthlib_decodes_query(request: Request) -> bool:
    uri = get_oauthlib_core()._get_escaped_full_path(request)
    try:
        urldecode(urlsplit(uri).query)
    except ValueError:
        return False
    return True


class HasManagementScope(BasePermission):
    """The token must carry one of the scopes the view lists for the request's method.

    ``required_scopes = {"GET": ["read:api_keys"], "POST": ["create:api_keys"]}``; a list
    of several scopes means any one of them will do.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if token is None or not hasattr(token, "scope"):
            raise drf.NotAuthenticated("A valid Bearer access token is required.")
        method = "GET" if request.method == "HEAD" else request.method
        wanted = view.required_scopes.get(method)
        if not wanted:
            # Every operation names its scope; anything else (OPTIONS included) is not offered.
            raise drf.MethodNotAllowed(method or "")
        granted = set(token.scope.split())
        if granted.isdisjoint(wanted):
            raise ApiError(
                status=HTTPStatus.FORBIDDEN,
                code="INSUFFICIENT_SCOPE",
                message=f"This operation needs the scope {' or '.join(wanted)}.",
            )
        return True


class LimitedJSONParser(JSONParser):
    """JSON bodies up to 64 KiB (also when no Content-Length announces the size), nested at
    most ``MAX_JSON_DEPTH`` levels, with no key repeated within one object."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = raw.decode(encoding)
            # The depth is measured before parsing: json's decoder recurses once per level,
            # so a body 1,000 levels deep would otherwise be a RecursionError (a 500).
            if json_depth(text) > MAX_JSON_DEPTH:
                raise drf.ParseError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
            return json.loads(
                text,
                object_pairs_hook=_object_without_repeated_keys,
                parse_constant=json.strict_constant if api_settings.STRICT_JSON else None,
            )
        except ValueError as exc:
            raise drf.ParseError(f"JSON parse error - {exc}") from None


# A JSON string as the parser lexes it (a quote, then anything but a quote or backslash, or a
# backslash and the character it escapes, up to the closing quote), or an unterminated one
# up to the end of the text: every quote starts a match that always succeeds, so the scan is
# linear (with a match that could fail, each of n quotes could rescan the rest: quadratic).
# Possessive quantifiers: no backtracking either.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]++")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep the arrays and objects of ``text`` nest, counted without parsing it.

    Why a scan and not a guard around the parser: catching RecursionError would tie the
    limit to the interpreter's recursion limit and to how deep the stack already is, and
    would still let a body just under it be parsed (and walked by every serializer after
    it); measuring the depth of the parsed value would itself recurse. This is one pass of
    two regular expressions (strings removed, so that a bracket inside a string does not
    count, then everything but brackets) and a running sum in C: linear, never recursive,
    a few milliseconds for 64 KiB of nothing but brackets, less than parsing them.

    Up to the parser's first error, and within the first complete value (it parses no
    further), its lexing and this one agree, so the count is never below the depth the
    parser would reach: for valid JSON it is the exact depth.
    """
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ApiError(
                    status=HTTPStatus.BAD_REQUEST,
                    code="DUPLICATE_FIELD",
                    message=f"The key {key[:64]!r} appears more than once in one object.",
                    field=key[:64],
                )
            seen.add(key)
    return result


class AlwaysJson(BaseContentNegotiation):
    """Answer JSON whatever the Accept header says: errors must never be HTML or a 406."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        for parser in parsers:
            if (
                request.content_type
                and request.content_type.split(";")[0].strip() == parser.media_type
            ):
                return parser
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> Any:
        first = next(iter(renderers))
        return first, first.media_type


def _too_large() -> ApiError:
    return ApiError(
        status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        code="REQUEST_TOO_LARGE",
        message=f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.",
    )


class ManagementApiView(APIView):
    """Base of every ``/api/v1/`` view."""

    authentication_classes = [ManagementTokenAuthentication]
    permission_classes = [HasManagementScope]
    parser_classes = [LimitedJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AlwaysJson
    schema = ManagementAutoSchema()
    throttle_classes: list[Any] = []
    required_scopes: dict[str, list[str]] = {}
    #: The query parameters each method accepts (HEAD: GET's), also given to
    #: ``extend_schema(parameters=...)`` so the document shows exactly these. A method not
    #: listed accepts none.
    query_parameters: dict[str, list[OpenApiParameter]] = {}

    def get_exception_handler(self) -> Callable[..., Any]:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._check_body(request)
        self._check_nul(request, kwargs)
        super().initial(request, *args, **kwargs)
        # After authentication and scopes: a caller without access learns nothing more.
        self._check_query_names(request)

    def _check_query_names(self, request: Request) -> None:
        method = "GET" if request.method == "HEAD" else request.method
        known = {p.name for p in self.query_parameters.get(method or "", [])}
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            name = unknown[0][:64]
            raise bad_request("UNKNOWN_PARAMETER", f"Unknown query parameter {name!r}.", name)

    @staticmethod
    def _check_nul(request: Request, kwargs: dict[str, Any]) -> None:
        # PostgreSQL text cannot hold NUL: refuse it at the door instead of failing in the
        # database. No id, code or filter value of ours can contain one.
        if any("\x00" in str(value) for value in kwargs.values()):
            raise ApiError(
                status=HTTPStatus.NOT_FOUND, code="ROUTE_NOT_FOUND", message="No such route."
            )
        for name, values in request.query_params.lists():
            if "\x00" in name or any("\x00" in v for v in values):
                raise bad_request(
                    "INVALID_QUERY", "Query parameters cannot contain NUL characters.", name[:64]
                )

    @staticmethod
    def _check_body(request: Request) -> None:
        # A chunked body is read whole (or refused) first, so that the size and media-type
        # rules below, and the parser, see it like any other.
        try:
            read_unannounced_body(request._request, limit=MAX_BODY_BYTES)
        except BodyTooLarge:
            raise _too_large() from None
        except LengthRequired:
            raise ApiError(
                status=HTTPStatus.LENGTH_REQUIRED,
                code="LENGTH_REQUIRED",
                message="This server cannot read a body sent without Content-Length; send one.",
            ) from None
        except BodyUnreadable:
            raise bad_request("INVALID_REQUEST", "The body could not be read.") from None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise _too_large()
        if request.method in ("POST", "PUT", "PATCH") and length > 0:
            media_type = (request.content_type or "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise drf.UnsupportedMediaType(media_type or "none")

    def actor(self) -> Actor:
        token = self.request.auth
        return Actor(application=getattr(token, "application", None), ip=client_ip(self.request))

    def body(self) -> dict[str, Any]:
        """The JSON body, which must be an object (an empty body is an empty object)."""
        data = self.request.data
        if not isinstance(data, dict):
            raise bad_request("INVALID_REQUEST", "The body must be a JSON object.")
        return data


# --------------------------------------------------------------------------- pagination


def page_size(request: Request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # An empty page_size (like an empty cursor) is a mistake to report, not a default.
    # isascii: str.isdigit() is also true of "¹" or "²", which int() refuses (a 500).
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise bad_request(
            "INVALID_PAGE_SIZE", "page_size must be a whole number from 1 to 100.", "page_size"
        )
    size = int(raw)
    if size > MAX_PAGE_SIZE:
        raise bad_request(
            "PAGE_SIZE_LIMIT_EXCEEDED", f"page_size may be at most {MAX_PAGE_SIZE}.", "page_size"
        )
    return size


def paginate(
    request: Request,
    queryset: QuerySet[Any],
    *,
    order_field: str,
    cursor_value: Callable[[str], Any],
) -> tuple[list[Any], bool]:
    """Newest first by ``order_field`` (unique, time-ordered); ``starting_after`` is the
    public id of the last item of the previous page, turned into an ``order_field`` value by
    ``cursor_value`` (which returns None for an id that cannot be a cursor).

    A strict order on a unique field means a walk sees every item that existed when it
    started exactly once, whatever is added meanwhile.
    """
    size = page_size(request)
    after = request.query_params.get("starting_after")
    if after is not None:
        value = cursor_value(after) if after else None
        if value is None:
            raise bad_request(
                "INVALID_CURSOR",
                "starting_after is not the id of an item of this list.",
                "starting_after",
            )
        queryset = queryset.filter(**{f"{order_field}__lt": value})
    items = list(queryset.order_by(f"-{order_field}")[: size + 1])
    return items[:size], len(items) > size


def list_body(name: str, items: list[Any], has_more: bool) -> dict[str, Any]:
    return {"code": "OK", "message": "Success", "has_more": has_more, name: items}


OK = {"code": "OK", "message": "Success"}
