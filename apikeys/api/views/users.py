"""Users: read one, create one, list them.

Rules:

- A user is addressed by its public id (``kp_…``), never by a database id; an unknown or
  malformed id is 404 ``USER_NOT_FOUND``.
- Filters are exact (``email`` case-insensitively); an empty filter is refused.
"""

from __future__ import annotations

from http import HTTPStatus

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import services
from apikeys.api import serializers as s
from apikeys.api.base import ManagementApiView, list_body, paginate
from apikeys.api.views._common import (
    ERRORS,
    KINDE_LIST_PARAMS,
    PAGE_PARAMS,
    User,
    kinde_ignored,
    list_envelope,
    matches,
    serialized_list,
    user_in_query,
    validated,
)
from apikeys.models import USER_ID_PATTERN


class UserApi(ManagementApiView):
    required_scopes = {"GET": ["read:users"], "POST": ["create:users"]}
    query_parameters = {
        "GET": [OpenApiParameter("id", str, required=True), kinde_ignored("expand")]
    }

    @extend_schema(
        operation_id="get_user",
        parameters=query_parameters["GET"],
        responses={200: s.UserOut, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        user_id = validated(s.UserQuery, request.query_params.dict())["id"]
        return Response(s.UserOut(user_in_query(user_id)).data)

    @extend_schema(
        operation_id="create_user",
        request=s.UserCreateIn,
        responses={
            201: inline_serializer(
                "UserCreated",
                {"id": serializers.CharField(), "created": serializers.BooleanField()},
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.UserCreateIn, self.body())
        user = services.user_create(
            email=data["email"],
            given_name=data["given_name"],
            family_name=data["family_name"],
            actor=self.actor(),
        )
        return Response({"id": user.public_id, "created": True}, status=HTTPStatus.CREATED)


class UsersApi(ManagementApiView):
    required_scopes = {"GET": ["read:users"]}
    query_parameters = {
        "GET": [
            *PAGE_PARAMS,
            OpenApiParameter("email", str),
            OpenApiParameter("user_id", str, description="Only the user with this id (kp_…)."),
            *KINDE_LIST_PARAMS,
            kinde_ignored("username"),
            kinde_ignored("expand"),
            kinde_ignored("has_organization"),
        ]
    }

    @extend_schema(
        operation_id="list_users",
        parameters=query_parameters["GET"],
        responses={200: list_envelope("UserList", "users", s.UserOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.UsersQuery, request.query_params.dict())
        users = User.objects.all()
        if "email" in query:
            users = users.filter(email__iexact=query["email"])
        if "user_id" in query:
            users = users.filter(public_id=query["user_id"])
        items, has_more = paginate(
            request,
            users,
            order_field="public_id",
            cursor_value=lambda v: matches(USER_ID_PATTERN, v),
        )
        return Response(list_body("users", serialized_list(s.UserOut, items), has_more))
