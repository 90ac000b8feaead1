"""API keys in and out: issue (one owner, of the ``type`` given), rotate, verify (any
non-empty string, as sent, one problem at a time), list filters; a key's output never holds
more of its secret than the prefix and suffix."""

from __future__ import annotations

from typing import Any, Final

from rest_framework import serializers

from apikeys import exceptions as errors
from apikeys.api.serializers._base import (
    ExactStringField,
    OneErrorAtATime,
    QueryValueField,
    StrictCharField,
    StrictDateTimeField,
    StrictIntegerField,
    StrictSerializer,
    api_in_body,
    iso,
    org_in_body,
    user_in_body,
)
from apikeys.models import ApiKey
from apikeys.services import Verification
from apikeys.services.webhooks import api_key_object


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
    ratelimit = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='{"limit": 1-10000, "duration": 1-86400} (seconds)',
    )
    credits = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='{"remaining": 0-1000000000, "refill": {"interval": "daily"|"monthly", '
        '"amount": 1-1000000000}?}',
    )

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


class ApiKeyUpdateIn(StrictSerializer):
    """PATCH: each field only when given; ``null`` removes a limit or the expiry. The
    limits' shapes are checked by the service (one path for every door)."""

    name = StrictCharField(required=False, min_length=1, max_length=128)
    ratelimit = serializers.JSONField(required=False, allow_null=True)
    credits = serializers.JSONField(required=False, allow_null=True)
    expires_at = StrictDateTimeField(required=False, allow_null=True)


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
    cost = StrictIntegerField(required=False, min_value=0, max_value=1000)  # _MAX_COST

    def unknown_field_errors(self, unknown: list[str]) -> dict[str, list[serializers.ErrorDetail]]:
        name = unknown[0][:64]
        return {name: [serializers.ErrorDetail(f"Unknown field {name!r}.", code="UNKNOWN_FIELD")]}

    @classmethod
    def plainly_valid(cls, data: Any) -> dict[str, Any] | None:
        """``data`` as this serializer's validated data, without building the serializer,
        when it is plainly valid (the verify endpoint's hot path: the serializer and its
        fields cost more CPU than the key check); ``None`` for anything else, which then
        goes through the serializer and gets its errors. Accepts a subset of what the
        serializer accepts, and answers what it answers (tests/api/test_verify_body.py)."""
        if type(data) is not dict or not data.keys() <= _VERIFY_FIELDS:
            return None
        key = data.get("api_key")
        if type(key) is not str or not key:
            return None
        audience = data.get("audience")
        if audience is not None and (
            type(audience) is not str or not audience or "\x00" in audience
        ):
            return None
        if "cost" in data:
            cost = data["cost"]
            if type(cost) is not int or not 0 <= cost <= _MAX_COST:
                return None
        return dict(data)


_VERIFY_FIELDS: Final = frozenset({"api_key", "audience", "cost"})
_MAX_COST: Final = 1000


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
    ratelimit = serializers.JSONField(allow_null=True)
    credits = serializers.JSONField(allow_null=True)

    def to_representation(self, key: ApiKey) -> dict[str, Any]:
        # One shape for the API and the webhook events (services.webhooks.api_key_object).
        return api_key_object(key)


class UsageBucketOut(serializers.Serializer[Any]):
    start = serializers.CharField()
    verified = serializers.IntegerField()
    rate_limited = serializers.IntegerField()
    usage_exceeded = serializers.IntegerField()
    revoked = serializers.IntegerField()
    expired = serializers.IntegerField()
    wrong_audience = serializers.IntegerField()

    def to_representation(self, bucket: dict[str, Any]) -> dict[str, Any]:
        return {**bucket, "start": iso(bucket["start"])}


VERIFY_MESSAGES = {
    Verification.VERIFIED: "API key verified",
    Verification.INVALID: "API key is not valid",
    Verification.REVOKED: "API key has been revoked",
    Verification.EXPIRED: "API key has expired",
    Verification.WRONG_AUDIENCE: "API key is not valid for this audience",
    Verification.RATE_LIMITED: "API key rate limit exceeded",
    Verification.USAGE_EXCEEDED: "API key has no credits left",
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
                    "API_KEY_RATE_LIMITED",
                    "API_KEY_USAGE_EXCEEDED",
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
            "ratelimit": serializers.JSONField(
                required=False, help_text="limit, remaining, reset: keys with a rate limit only"
            ),
            "credits_remaining": serializers.IntegerField(
                required=False, help_text="keys with credits only"
            ),
        }

    def to_representation(self, result: Verification) -> dict[str, Any]:
        return verification_answer(result)


def verification_answer(result: Verification) -> dict[str, Any]:
    """The verify endpoint's JSON answer (:class:`VerificationOut`), built directly: the
    view calls this on its hot path rather than through a serializer instance."""
    answer: dict[str, Any] = {
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
    if result.ratelimit is not None:
        answer["ratelimit"] = {
            **result.ratelimit,
            "reset": iso(result.ratelimit.get("reset")),
        }
    if result.credits_remaining is not None:
        answer["credits_remaining"] = result.credits_remaining
    return answer
