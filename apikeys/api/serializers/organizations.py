"""Organizations and their members in and out: adding members resolves every user id and
role key before anything is written."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import (
    OneErrorAtATime,
    QueryValueField,
    StrictCharField,
    StrictSerializer,
    iso,
    role_in_body,
    user_in_body,
)


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
