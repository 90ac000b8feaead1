"""Input and output serializers of the Management API.

Inputs are strict: a JSON number where a string is expected is an error (no coercion), and
unknown fields are refused, so that a typo never silently drops a value. Every check of a
view's input is here, not in the view: a view calls ``validated`` and gets typed values, ids
in the body already resolved to rows (an unknown one is the domain's ``NotFound``, a 400
naming the field). Errors keep DRF's shape until ``apikeys.api.errors`` turns them into the
contract's body; an uppercase error code (``FIELD_REQUIRED``, ``INVALID_FILTER``) passes
through unchanged. Query strings are read by query serializers (``*Query``), which report
one problem at a time, as the contract's filters always have.

Outputs are written out field by field, never ``fields = "__all__"``.
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
from apikeys.models import API_ID_PATTERN, USER_ID_PATTERN, Api, ApiKey, Organization, Role
from apikeys.services import Verification

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


# --------------------------------------------------------------------------- API keys


class ApiKeyCreateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=128)
    api_id = StrictCharField(max_length=200)
    scope_ids = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, default=list, max_length=100
    )
    org_code = StrictCharField(required=False, allow_null=True, max_length=200)
    user_id = StrictCharField(required=False, allow_null=True, max_length=200)
    type = serializers.ChoiceField(choices=["organization", "user"], required=False)
    expires_at = StrictDateTimeField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Adds ``api``, ``organization`` and ``user``: exactly one owner, of the ``type``
        given if any."""
        api = api_in_body(attrs["api_id"])
        org_code, user_id = attrs.get("org_code") or None, attrs.get("user_id") or None
        if org_code and user_id:
            raise errors.OwnerAmbiguous()
        if not org_code and not user_id:
            raise errors.OwnerRequired()
        owner_type = "organization" if org_code else "user"
        if attrs.get("type") and attrs["type"] != owner_type:
            raise serializers.ValidationError(
                {
                    "type": serializers.ErrorDetail(
                        f"type is {attrs['type']!r} but the owner given is a {owner_type}.",
                        code="OWNER_TYPE_MISMATCH",
                    )
                }
            )
        return {
            **attrs,
            "api": api,
            "organization": org_in_body(org_code, "org_code") if org_code else None,
            "user": user_in_body(user_id, "user_id") if user_id else None,
        }


class ApiKeyListQuery(OneErrorAtATime):
    key_type = QueryValueField(choices=("organization", "user"))
    status = QueryValueField(choices=("active", "revoked", "expired"))
    user_id = QueryValueField()
    org_code = QueryValueField()
    api_id = QueryValueField()


class ApiKeyRotateIn(StrictSerializer):
    expire_previous_in = StrictIntegerField(
        min_value=0, max_value=604800, required=False, default=0
    )


class ApiKeyVerifyIn(OneErrorAtATime, StrictSerializer):
    """The key to verify, exactly as received: any non-empty string (a malformed key is
    answered 200 as not valid). With ``audience``, only keys of that API are valid."""

    # One problem reported at a time, an unknown field first; audience refuses NUL.

    api_key = ExactStringField(
        error_messages={
            "required": "api_key is required.",
            "invalid": "api_key must be a non-empty string.",
        }
    )
    audience = ExactStringField(
        required=False,
        allow_null=True,
        reject_nul=True,
        error_messages={"invalid": "audience must be a non-empty string."},
    )

    def unknown_field_errors(self, unknown: list[str]) -> dict[str, list[serializers.ErrorDetail]]:
        name = unknown[0][:64]
        return {name: [serializers.ErrorDetail(f"Unknown field {name!r}.", code="UNKNOWN_FIELD")]}


class SecretOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    key = serializers.CharField(help_text="The key itself, shown this once.")


class ApiKeyOut(serializers.Serializer[Any]):
    """A key as listed and read. Reads only columns of the key row: no per-row queries."""

    id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["organization", "user"])
    status = serializers.ChoiceField(choices=["active", "revoked", "expired"])
    key_prefix = serializers.CharField()
    key_suffix = serializers.CharField()
    created_on = serializers.CharField()
    created_by = serializers.CharField(allow_null=True)
    last_verified_on = serializers.CharField(allow_null=True)
    last_verified_ip = serializers.CharField(allow_null=True)
    verification_count = serializers.IntegerField()
    api_ids = serializers.ListField(child=serializers.CharField())
    scopes = serializers.ListField(child=serializers.CharField())
    org_code = serializers.CharField(allow_null=True)
    user_id = serializers.CharField(allow_null=True)
    expires_at = serializers.CharField(allow_null=True)
    rotated_on = serializers.CharField(allow_null=True)
    revoked_on = serializers.CharField(allow_null=True)

    def to_representation(self, key: ApiKey) -> dict[str, Any]:
        return {
            "id": key.id,
            "name": key.name,
            "type": key.type,
            "status": key.effective_status,
            "key_prefix": key.key_prefix,
            "key_suffix": key.key_suffix,
            "created_on": iso(key.created_on),
            "created_by": key.created_by or None,
            "last_verified_on": iso(key.last_verified_on),
            "last_verified_ip": key.last_verified_ip,
            "verification_count": key.verification_count,
            "api_ids": [key.api_public_id],
            "scopes": key.scope_list,
            "org_code": key.org_code or None,
            "user_id": key.user_public_id or None,
            "expires_at": iso(key.expires_at),
            "rotated_on": iso(key.rotated_on),
            "revoked_on": iso(key.revoked_on),
        }


VERIFY_MESSAGES = {
    Verification.VERIFIED: "API key verified",
    Verification.INVALID: "API key is not valid",
    Verification.REVOKED: "API key has been revoked",
    Verification.EXPIRED: "API key has expired",
    Verification.WRONG_AUDIENCE: "API key is not valid for this audience",
}


class VerificationOut(serializers.Serializer[Any]):
    # For the OpenAPI document. The fields are made in get_fields: declared on the class,
    # ``is_valid`` would shadow Serializer.is_valid (a docstring would be published).

    def get_fields(self) -> dict[str, Any]:
        return {
            "code": serializers.ChoiceField(
                choices=[
                    "API_KEY_VERIFIED",
                    "API_KEY_INVALID",
                    "API_KEY_REVOKED",
                    "API_KEY_EXPIRED",
                    "API_KEY_WRONG_AUDIENCE",
                ]
            ),
            "message": serializers.CharField(),
            "is_valid": serializers.BooleanField(),
            "key_id": serializers.CharField(allow_null=True),
            "status": serializers.CharField(allow_null=True),
            "scopes": serializers.ListField(child=serializers.CharField()),
            "org_code": serializers.CharField(allow_null=True),
            "user_id": serializers.CharField(allow_null=True),
            "last_verified_on": serializers.CharField(allow_null=True),
            "verification_count": serializers.IntegerField(allow_null=True),
            "api_id": serializers.CharField(allow_null=True),
            "audience": serializers.CharField(allow_null=True),
            "expires_at": serializers.CharField(allow_null=True),
        }

    def to_representation(self, result: Verification) -> dict[str, Any]:
        return {
            "code": result.code,
            "message": VERIFY_MESSAGES[result.code],
            "is_valid": result.is_valid,
            "key_id": result.key_id,
            "status": result.status,
            "scopes": list(result.scopes),
            "org_code": result.org_code,
            "user_id": result.user_id,
            "last_verified_on": iso(result.last_verified_on),
            "verification_count": result.verification_count,
            "api_id": result.api_id,
            "audience": result.audience,
            "expires_at": iso(result.expires_at),
        }


# --------------------------------------------------------------------------- APIs and scopes


class ApiCreateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=64)
    audience = StrictCharField(min_length=1, max_length=64)


class ScopeCreateIn(StrictSerializer):
    key = StrictCharField(min_length=1, max_length=64, trim_whitespace=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class ScopeUpdateIn(StrictSerializer):
    description = StrictCharField(allow_blank=True, max_length=255)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "key" in data:
            raise serializers.ValidationError(
                {
                    "key": [
                        serializers.ErrorDetail(
                            "A scope's key cannot be changed.", code="FIELD_NOT_UPDATABLE"
                        )
                    ]
                }
            )
        return super().to_internal_value(data)


class ScopeOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    key = serializers.CharField()
    description = serializers.CharField()


class ApiOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    audience = serializers.CharField()
    created_on = serializers.CharField()

    def to_representation(self, api: Any) -> dict[str, Any]:
        return {
            "id": api.id,
            "name": api.name,
            "audience": api.audience,
            "created_on": iso(api.created_on),
        }


class ApiDetailOut(ApiOut):
    scopes = ScopeOut(many=True)

    def to_representation(self, api: Any) -> dict[str, Any]:
        data = super().to_representation(api)
        data["scopes"] = [
            {"id": s.id, "key": s.key, "description": s.description}
            for s in api.scopes.order_by("key")
        ]
        return data


# --------------------------------------------------------------------------- organizations, users, roles


class OrganizationCreateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=128)
    code = StrictCharField(required=False, max_length=64)


class OrganizationUpdateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=128)


class OrganizationQuery(OneErrorAtATime):
    code = QueryValueField(
        required=True,
        empty_is_missing=True,
        error_messages={"required": "The code query parameter is required."},
    )


class OrganizationOut(serializers.Serializer[Any]):
    code = serializers.CharField()
    name = serializers.CharField()
    created_on = serializers.CharField()

    def to_representation(self, org: Any) -> dict[str, Any]:
        return {"code": org.code, "name": org.name, "created_on": iso(org.created_on)}


class UserCreateIn(StrictSerializer):
    email = StrictCharField(max_length=254)
    given_name = StrictCharField(required=False, allow_blank=True, max_length=150, default="")
    family_name = StrictCharField(required=False, allow_blank=True, max_length=150, default="")


class UserQuery(OneErrorAtATime):
    # A missing or empty id is no user: 404, like any id that names nobody.
    id = QueryValueField(empty_is_missing=True, default="")


class UsersQuery(OneErrorAtATime):
    email = QueryValueField()
    user_id = QueryValueField()


class UserOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    full_name = serializers.CharField()
    created_on = serializers.CharField()

    def to_representation(self, user: Any) -> dict[str, Any]:
        return {
            "id": user.public_id,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "full_name": user.get_full_name(),
            "created_on": iso(user.date_joined),
        }


class MemberIn(StrictSerializer):
    id = StrictCharField(max_length=200)
    roles = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, default=list, max_length=50
    )


class OrganizationUsersIn(StrictSerializer):
    users = serializers.ListField(child=MemberIn(), min_length=1, max_length=100)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Adds ``members``, ``(user, roles)`` pairs: every id resolved before anything is
        written, so that one unknown id adds nobody."""
        members = [
            (
                user_in_body(member["id"], f"users.{index}.id"),
                [role_in_body(key, f"users.{index}.roles") for key in member["roles"]],
            )
            for index, member in enumerate(attrs["users"])
        ]
        return {**attrs, "members": members}


class OrganizationUserOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    email = serializers.CharField()
    full_name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())

    def to_representation(self, membership: Any) -> dict[str, Any]:
        user = membership.user
        return {
            "id": user.public_id,
            "email": user.email,
            "full_name": user.get_full_name(),
            "roles": sorted(r.key for r in membership.roles.all()),
        }


class RoleCreateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=128)
    key = StrictCharField(min_length=1, max_length=64)
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class RoleOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()

    def to_representation(self, role: Any) -> dict[str, Any]:
        return {"id": role.id, "key": role.key, "name": role.name, "description": role.description}


class SystemPermissionOut(serializers.Serializer[Any]):
    key = serializers.CharField()
    description = serializers.CharField()

    def to_representation(self, permission: Any) -> dict[str, Any]:
        return {"key": permission.key, "description": permission.description}


class PermissionChangeIn(StrictSerializer):
    key = StrictCharField(max_length=64)
    operation = serializers.ChoiceField(choices=["add", "delete"], required=False, default="add")


class RolePermissionsIn(StrictSerializer):
    system_permissions = serializers.ListField(
        child=PermissionChangeIn(), min_length=1, max_length=50
    )


class PortalLinkIn(StrictSerializer):
    user_id = StrictCharField(max_length=200)
    organization_code = StrictCharField(required=False, allow_null=True, max_length=200)
    return_url = StrictCharField(required=False, allow_null=True, max_length=2000)
    sub_nav = StrictCharField(required=False, allow_null=True, max_length=64)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Adds ``user`` and ``organization`` (None when no code is given)."""
        user = user_in_body(attrs["user_id"], "user_id")
        org_code = attrs.get("organization_code") or None
        return {
            **attrs,
            "user": user,
            "organization": org_in_body(org_code, "organization_code") if org_code else None,
        }


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
