"""What every Management API view module shares: the OpenAPI envelopes and error
responses, input validation, the query filters, and the lookups of ids.

Rules:

- An id in the path that does not exist (or that the caller may not see) is 404 with the
  contract's code (``*_in_path``); an id in the body that does not exist is 400 with the
  field named (resolved by the input serializers, through the domain's ``NotFound``).
- Input, body and query string alike, is checked by strict serializers
  (:func:`validated`), never by hand in a view.
- A body holding a secret (a key, a signed-in link) is sent with ``Cache-Control: no-store``
  (:func:`secret_response`).
"""

from __future__ import annotations

import re
from typing import Any, cast

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apikeys.api import schema as _schema  # noqa: F401  (registers the security scheme)
from apikeys.api import serializers as s
from apikeys.api.errors import not_found
from apikeys.models import (
    API_ID_PATTERN,
    API_KEY_ID_PATTERN,
    USER_ID_PATTERN,
    Api,
    ApiKey,
    Organization,
    Role,
    Scope,
)

User = get_user_model()

ERRORS = {
    400: s.ErrorOut,
    401: s.ErrorOut,
    403: s.ErrorOut,
    404: s.ErrorOut,
    409: s.ErrorOut,
    411: s.ErrorOut,
    413: s.ErrorOut,
    415: s.ErrorOut,
}
PAGE_PARAMS = [
    OpenApiParameter("page_size", int, description="1 to 100 (default 50)."),
    OpenApiParameter("starting_after", str, description="The last id of the previous page."),
]


# Starts the description of every accepted-but-ignored parameter in the OpenAPI document.
IGNORED_PREFIX = "Ignored."


def kinde_ignored(name: str) -> OpenApiParameter:
    """A query parameter Kinde's Management API defines for the path and this service does
    not implement: accepted (a Kinde client keeps working) and ignored, and documented as
    such. Any value is accepted, so it has no enum (a fuzzer would call a refusal wrong)."""
    return OpenApiParameter(
        name,
        str,
        description=f"{IGNORED_PREFIX} Kinde's Management API defines it for this path; this "
        "service accepts it for compatibility and ignores it (lists come newest first, one "
        "page at a time through page_size and starting_after).",
    )


# Kinde's cursor and order for its lists: ignored here (starting_after and newest first).
KINDE_LIST_PARAMS = [kinde_ignored("sort"), kinde_ignored("next_token")]


def envelope(name: str, item: Any, code: str = "OK", message: str = "Success") -> Any:
    return inline_serializer(
        name=name,
        fields={
            "code": serializers.CharField(default=code),
            "message": serializers.CharField(default=message),
            **item,
        },
    )


def list_envelope(name: str, key: str, item: Any) -> Any:
    return inline_serializer(
        name=name,
        fields={
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "has_more": serializers.BooleanField(),
            key: item(many=True),
        },
    )


OK_SCHEMA = envelope("Ok", {})


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """The input ``data`` checked by ``serializer_class``: its validated data, or a
    ``ValidationError`` that the exception handler turns into the contract's 400."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def serialized_list(
    serializer_class: type[serializers.Serializer[Any]], items: list[Any]
) -> list[Any]:
    """``items`` through the output serializer ``serializer_class``, as a list."""
    # ``many=True`` gives a ListSerializer whose data is a list; the DRF stubs type the data
    # of every serializer as a dict.
    return cast("list[Any]", serializer_class(items, many=True).data)


def matches(pattern: str, value: str) -> str | None:
    return value if re.fullmatch(pattern, value) else None


# --------------------------------------------------------------------------- lookups


def api_in_path(api_id: str) -> Api:
    api = Api.objects.filter(pk=api_id).first() if re.fullmatch(API_ID_PATTERN, api_id) else None
    if api is None:
        raise not_found("API_NOT_FOUND", "No API with that id.")
    return api


def key_in_path(key_id: str) -> ApiKey:
    key = (
        ApiKey.objects.filter(pk=key_id).first()
        if re.fullmatch(API_KEY_ID_PATTERN, key_id)
        else None
    )
    if key is None:
        raise not_found("API_KEY_NOT_FOUND", "No API key with that id.")
    return key


def scope_in_path(api: Api, scope_id: str) -> Scope:
    scope = Scope.objects.filter(api=api, pk=scope_id).first()
    if scope is None:
        raise not_found("SCOPE_NOT_FOUND", "No scope with that id in this API.")
    return scope


def org_in_path(code: str) -> Organization:
    org = Organization.objects.filter(code=code).first()
    if org is None:
        raise not_found("ORGANIZATION_NOT_FOUND", "No organization with that code.")
    return org


def role_in_path(role_id: str) -> Role:
    role = (
        Role.objects.filter(pk=role_id).first() if re.fullmatch(API_ID_PATTERN, role_id) else None
    )
    if role is None:
        raise not_found("ROLE_NOT_FOUND", "No role with that id.")
    return role


def user_in_query(user_id: str) -> Any:
    user = (
        User.objects.filter(public_id=user_id).first()
        if re.fullmatch(USER_ID_PATTERN, user_id)
        else None
    )
    if user is None:
        raise not_found("USER_NOT_FOUND", "No user with that id.")
    return user


def secret_response(body: dict[str, Any], status: int) -> Response:
    # A key is in this body: no cache anywhere may keep it.
    return Response(
        body, status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
