"""What every input serializer shares: strict fields (no coercion), the strict
serializer (unknown fields refused), query values, one-error-at-a-time reporting, the
lookups of ids in the body, ``iso`` and the error body's schema.

Rules: a wrong type is an error, never coerced; an unknown field is refused; an id in the
body that names nothing is the domain's ``NotFound`` (400 naming the field), resolved in a
serializer's ``validate`` after every field is valid; an uppercase error code raised here
passes through ``apikeys.api.errors`` unchanged.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from apikeys import exceptions as errors
from apikeys.models import API_ID_PATTERN, USER_ID_PATTERN, Api, Organization, Role

User = get_user_model()


# --------------------------------------------------------------------------- strict input


class StrictCharField(serializers.CharField):
    """A string, and only a string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that (not a string, a float or a boolean)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 string with an explicit offset."""

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601 with an offset")
        parsed = super().to_internal_value(value)
        if not re.search(r"(Z|[+-]\d{2}:?\d{2})$", value.strip()):
            raise serializers.ValidationError(
                "Give the time zone offset explicitly (e.g. 2030-01-01T00:00:00+00:00).",
                code="INVALID_FIELD",
            )
        return parsed


@extend_schema_field({"type": "string", "minLength": 1})
class ExactStringField(serializers.Field[str, str, str, Any]):
    """A non-empty JSON string taken exactly as sent: not trimmed, no character refused
    (NUL too, unless ``reject_nul``), and ``null`` counted as missing unless
    ``allow_null``. For values that are compared, not stored (a key to verify)."""

    default_error_messages = {"invalid": "Must be a non-empty string."}

    def __init__(self, *, reject_nul: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reject_nul = reject_nul

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None and not self.allow_null:
            data = empty
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not data or (self.reject_nul and "\x00" in data):
            self.fail("invalid")
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field(OpenApiTypes.STR)
class QueryValueField(serializers.Field[str, str, str, Any]):
    """One query parameter's value (a string). Given empty it is refused (400
    ``INVALID_FILTER``, never ignored: ``?org_code=`` built from a missing value would
    otherwise list everything), or counted as missing where ``empty_is_missing``; with
    ``choices``, it must be one of them."""

    def __init__(
        self,
        *,
        choices: tuple[str, ...] | None = None,
        empty_is_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.choices = choices
        self.empty_is_missing = empty_is_missing

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data == "" and self.empty_is_missing:
            data = empty
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        name = self.field_name
        if data == "":
            raise serializers.ValidationError(
                f"{name} cannot be empty; leave it out instead.", code="INVALID_FILTER"
            )
        if self.choices is not None and data not in self.choices:
            raise serializers.ValidationError(
                f"{name} must be one of: {', '.join(self.choices)}.", code="INVALID_FILTER"
            )
        return str(data)

    def to_representation(self, value: str) -> str:
        return value


def _first_error(detail: Any) -> Any:
    """The first problem of a serializer's errors, in the order of its fields."""
    if isinstance(detail, dict):
        name, problems = next(iter(detail.items()))
        return {name: [problems[0]] if isinstance(problems, list) else problems}
    return detail


class OneErrorAtATime(serializers.Serializer[Any]):
    """Reports only the first problem found, in the order of the fields (the contract's
    answer for the verify body and the query filters, which always stopped at the first)."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(_first_error(exc.detail)) from None


class StrictSerializer(serializers.Serializer[Any]):
    """Refuses unknown fields and bodies that are not JSON objects."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        serializers.ErrorDetail(
                            "The body must be a JSON object.", code="INVALID_REQUEST"
                        )
                    ]
                }
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(self.unknown_field_errors(unknown))
        return super().to_internal_value(data)

    def unknown_field_errors(self, unknown: list[str]) -> dict[str, list[serializers.ErrorDetail]]:
        """The errors for ``unknown`` (sorted names of fields this serializer lacks)."""
        return {
            name: [serializers.ErrorDetail(f"Unknown field {name!r}.", code="UNKNOWN_FIELD")]
            for name in unknown[:10]
        }


# --------------------------------------------------------------------------- ids in the body
# An id in the body that names nothing is the domain's NotFound (400, naming the field);
# resolved in ``validate``, after every field is valid, in the order the contract answers.


def api_in_body(api_id: str) -> Api:
    api = Api.objects.filter(pk=api_id).first() if re.fullmatch(API_ID_PATTERN, api_id) else None
    if api is None:
        raise errors.ApiNotFound(field="api_id")
    return api


def org_in_body(code: str, field: str) -> Organization:
    org = Organization.objects.filter(code=code).first()
    if org is None:
        raise errors.OrganizationNotFound(field=field)
    return org


def user_in_body(user_id: str, field: str) -> Any:
    user = (
        User.objects.filter(public_id=user_id).first()
        if re.fullmatch(USER_ID_PATTERN, user_id)
        else None
    )
    if user is None:
        raise errors.UserNotFound(field=field)
    return user


def role_in_body(key: str, field: str) -> Role:
    role = Role.objects.filter(key=key).first()
    if role is None:
        raise errors.RoleNotFound(f"No role with key {key[:64]!r}.", field=field)
    return role


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with an explicit UTC offset."""
    if value is None:
        return None
    return timezone.localtime(value, timezone.get_fixed_timezone(0)).isoformat()


# --------------------------------------------------------------------------- envelopes (schema)


class ErrorItemOut(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorOut(serializers.Serializer[Any]):
    # For the OpenAPI document. The field is made in get_fields: declared on the class,
    # ``errors`` would shadow Serializer.errors (a docstring would be published).

    def get_fields(self) -> dict[str, Any]:
        return {"errors": ErrorItemOut(many=True)}
