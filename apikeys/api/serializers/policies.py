"""Key policies in and out: three limits, each a whole number in its range or ``null``."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import StrictIntegerField, StrictSerializer
from apikeys.models import POLICY_MAX_ACTIVE_KEYS, POLICY_MAX_DAYS


def _limit(top: int, what: str) -> StrictIntegerField:
    return StrictIntegerField(
        min_value=1,
        max_value=top,
        allow_null=True,
        help_text=f"{what}, 1 to {top}; null for no limit.",
    )


class KeyPolicyIn(StrictSerializer):
    """A whole policy (PUT replaces it): every field is required, ``null`` meaning no limit."""

    max_lifetime_days = _limit(POLICY_MAX_DAYS, "Longest lifetime of a new key, in days")
    max_active_keys = _limit(POLICY_MAX_ACTIVE_KEYS, "Most active keys per owner")
    max_idle_days = _limit(POLICY_MAX_DAYS, "Days without a verification before revocation")


class KeyPolicyOut(serializers.Serializer[Any]):
    max_lifetime_days = serializers.IntegerField(allow_null=True)
    max_active_keys = serializers.IntegerField(allow_null=True)
    max_idle_days = serializers.IntegerField(allow_null=True)

    def to_representation(self, policy: Any) -> dict[str, Any]:
        return dict(policy.limits())
