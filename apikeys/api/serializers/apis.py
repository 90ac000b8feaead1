"""APIs and scopes in and out: a scope's key never changes (``FIELD_NOT_UPDATABLE``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import (
    StrictCharField,
    StrictSerializer,
    iso,
)


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
