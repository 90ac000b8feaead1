"""Input and output serializers of the Management API.

Inputs are strict: a JSON number where a string is expected is an error (no coercion), and
unknown fields are refused, so that a typo never silently drops a value. Outputs are
written out field by field, never ``fields = "__all__"``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from apikeys.models import API_ID_PATTERN, ApiKey
from apikeys.services.leaks import MAX_SOURCE_LENGTH as MAX_LEAK_SOURCE_LENGTH
from apikeys.services.leaks import MAX_URL_LENGTH as MAX_LEAK_URL_LENGTH

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


class StrictSerializer(serializers.Serializer):
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
            raise serializers.ValidationError(
                {
                    name: [
                        serializers.ErrorDetail(f"Unknown field {name!r}.", code="UNKNOWN_FIELD")
                    ]
                    for name in unknown[:10]
                }
            )
        return super().to_internal_value(data)


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


class ApiKeyRotateIn(StrictSerializer):
    expire_previous_in = StrictIntegerField(
        min_value=0, max_value=604800, required=False, default=0
    )


class ApiKeyVerifyIn(StrictSerializer):
    """Documentation only: the verify view validates by hand, it is the hot path."""

    api_key = StrictCharField()
    audience = StrictCharField(required=False, allow_null=True)


class SecretOut(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField(help_text="The key itself, shown this once.")


class ApiKeyOut(serializers.Serializer):
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


class VerificationOut(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "API_KEY_VERIFIED",
            "API_KEY_INVALID",
            "API_KEY_REVOKED",
            "API_KEY_EXPIRED",
            "API_KEY_WRONG_AUDIENCE",
        ]
    )
    message = serializers.CharField()
    is_valid = serializers.BooleanField()
    key_id = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    org_code = serializers.CharField(allow_null=True)
    user_id = serializers.CharField(allow_null=True)
    last_verified_on = serializers.CharField(allow_null=True)
    verification_count = serializers.IntegerField(allow_null=True)
    api_id = serializers.CharField(allow_null=True)
    audience = serializers.CharField(allow_null=True)
    expires_at = serializers.CharField(allow_null=True)


# --------------------------------------------------------------------------- leaked keys


LEAK_LABELS = ["true_positive", "false_positive"]

# ``source`` and ``label`` are the contract's field names and also attributes of DRF's Field
# (the serializer's metaclass moves declared fields aside, so they work; the stubs object).


class LeakReportIn(StrictSerializer):
    # Not trimmed: a key with a space around it is not the key (verify does not trim either).
    api_key = StrictCharField(trim_whitespace=False, max_length=1000)
    url = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_LEAK_URL_LENGTH,
        help_text="Where the key was seen.",
    )
    source = StrictCharField(  # type: ignore[assignment]
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_LEAK_SOURCE_LENGTH,
        help_text="Who or what found it (a scanner's name, a channel).",
    )


class LeakReportOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=LEAK_LABELS,
        help_text="true_positive: the key was live and is now revoked. false_positive: "
        "anything else (nothing changed).",
    )


class GitHubReportedTokenIn(serializers.Serializer):
    """One match of GitHub's secret scanning. Not strict about fields GitHub may add later
    (a refused batch would lose the reports in it): those are ignored."""

    token = StrictCharField(trim_whitespace=False, max_length=1000)
    type = StrictCharField(trim_whitespace=False, max_length=128)
    url = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    source = StrictCharField(  # type: ignore[assignment]
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )


class GitHubTokenLabelOut(serializers.Serializer):
    token_hash = serializers.CharField(help_text="SHA-256 of the token, in hex.")
    token_type = serializers.CharField()
    label = serializers.ChoiceField(choices=LEAK_LABELS)  # type: ignore[assignment]


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


class ScopeOut(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField()
    description = serializers.CharField()


class ApiOut(serializers.Serializer):
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


class OrganizationOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    created_on = serializers.CharField()

    def to_representation(self, org: Any) -> dict[str, Any]:
        return {"code": org.code, "name": org.name, "created_on": iso(org.created_on)}


class UserCreateIn(StrictSerializer):
    email = StrictCharField(max_length=254)
    given_name = StrictCharField(required=False, allow_blank=True, max_length=150, default="")
    family_name = StrictCharField(required=False, allow_blank=True, max_length=150, default="")


class UserOut(serializers.Serializer):
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


class OrganizationUserOut(serializers.Serializer):
    id = serializers.CharField()
    email = serializers.CharField()
    full_name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class RoleCreateIn(StrictSerializer):
    name = StrictCharField(min_length=1, max_length=128)
    key = StrictCharField(min_length=1, max_length=64)
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class RoleOut(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()

    def to_representation(self, role: Any) -> dict[str, Any]:
        return {"id": role.id, "key": role.key, "name": role.name, "description": role.description}


class SystemPermissionOut(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()


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


# --------------------------------------------------------------------------- envelopes (schema)


class ErrorItemOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorOut(serializers.Serializer):
    errors = ErrorItemOut(many=True)


def is_api_id(value: str) -> bool:
    return bool(re.fullmatch(API_ID_PATTERN, value))
