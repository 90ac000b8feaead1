"""Roles and the system permissions they grant.

Rules:

- A role's key is unique; its system permissions change only by explicit ``add`` and
  ``delete`` operations, all applied or none.
- System permissions are a fixed catalogue: listed here, never created through the API.
"""

from __future__ import annotations

from http import HTTPStatus

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import services
from apikeys.api import serializers as s
from apikeys.api.base import OK, ManagementApiView, list_body, paginate
from apikeys.api.views._common import (
    ERRORS,
    KINDE_LIST_PARAMS,
    OK_SCHEMA,
    PAGE_PARAMS,
    envelope,
    list_envelope,
    matches,
    role_in_path,
    serialized_list,
    validated,
)
from apikeys.models import API_ID_PATTERN, Role, SystemPermission


class RolesApi(ManagementApiView):
    required_scopes = {"GET": ["read:roles"], "POST": ["create:roles"]}
    query_parameters = {"GET": [*PAGE_PARAMS, *KINDE_LIST_PARAMS]}

    @extend_schema(
        operation_id="list_roles",
        parameters=query_parameters["GET"],
        responses={200: list_envelope("RoleList", "roles", s.RoleOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Role.objects.all(),
            order_field="id",
            cursor_value=lambda v: matches(API_ID_PATTERN, v),
        )
        return Response(list_body("roles", serialized_list(s.RoleOut, items), has_more))

    @extend_schema(
        operation_id="create_role",
        request=s.RoleCreateIn,
        responses={
            201: envelope(
                "RoleCreated",
                {"role": inline_serializer("RoleId", {"id": serializers.CharField()})},
                "ROLE_CREATED",
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.RoleCreateIn, self.body())
        role = services.role_create(
            key=data["key"], name=data["name"], description=data["description"], actor=self.actor()
        )
        return Response(
            {"code": "ROLE_CREATED", "message": "Role created", "role": {"id": role.id}},
            status=HTTPStatus.CREATED,
        )


class RolePermissionsApi(ManagementApiView):
    required_scopes = {"PATCH": ["update:roles"]}

    @extend_schema(
        operation_id="update_role_system_permissions",
        request=s.RolePermissionsIn,
        responses={200: OK_SCHEMA, **ERRORS},
    )
    def patch(self, request: Request, role_id: str) -> Response:
        role = role_in_path(role_id)
        data = validated(s.RolePermissionsIn, self.body())
        add = [p["key"] for p in data["system_permissions"] if p["operation"] == "add"]
        remove = [p["key"] for p in data["system_permissions"] if p["operation"] == "delete"]
        services.role_change_permissions(role=role, add=add, remove=remove, actor=self.actor())
        return Response(OK)


class SystemPermissionsApi(ManagementApiView):
    required_scopes = {"GET": ["read:roles"]}
    query_parameters = {"GET": PAGE_PARAMS}

    @extend_schema(
        operation_id="list_system_permissions",
        parameters=query_parameters["GET"],
        responses={
            200: list_envelope("SystemPermissionList", "system_permissions", s.SystemPermissionOut),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            SystemPermission.objects.all(),
            order_field="pk",
            cursor_value=lambda v: (
                SystemPermission.objects.filter(key=v).values_list("pk", flat=True).first()
            ),
        )
        return Response(
            list_body("system_permissions", serialized_list(s.SystemPermissionOut, items), has_more)
        )
