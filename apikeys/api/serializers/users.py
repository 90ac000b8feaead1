"""Users in and out: a user is named by its public id (``kp_…``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import (
    OneErrorAtATime,
    QueryValueField,
    StrictCharField,
    StrictSerializer,
    iso,
)


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
