"""Roles and system permissions in and out: permission changes are explicit ``add`` or
``delete`` operations."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import (
    StrictCharField,
    StrictSerializer,
)


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
