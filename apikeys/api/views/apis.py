"""APIs (audiences of keys) and their scopes.

Rules:

- An API's audience is unique; a scope's key is unique within its API and never changes
  (only its description does: ``key`` in an update is 400 ``FIELD_NOT_UPDATABLE``).
- A scope is always addressed through its API: a scope id under another API is a 404.
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
    OK_SCHEMA,
    PAGE_PARAMS,
    api_in_path,
    envelope,
    kinde_ignored,
    list_envelope,
    matches,
    scope_in_path,
    serialized_list,
    validated,
)
from apikeys.models import API_ID_PATTERN, SCOPE_ID_PATTERN, Api


class ApisApi(ManagementApiView):
    required_scopes = {"GET": ["read:apis"], "POST": ["create:apis"]}
    query_parameters = {"GET": [*PAGE_PARAMS, kinde_ignored("expand")]}

    @extend_schema(
        operation_id="list_apis",
        parameters=query_parameters["GET"],
        responses={200: list_envelope("ApiList", "apis", s.ApiOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Api.objects.all(),
            order_field="id",
            cursor_value=lambda v: matches(API_ID_PATTERN, v),
        )
        return Response(list_body("apis", serialized_list(s.ApiOut, items), has_more))

    @extend_schema(
        operation_id="create_api",
        request=s.ApiCreateIn,
        responses={
            201: envelope(
                "ApiCreated",
                {"api": inline_serializer("ApiId", {"id": serializers.CharField()})},
                "API_CREATED",
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ApiCreateIn, self.body())
        api = services.api_create(name=data["name"], audience=data["audience"], actor=self.actor())
        return Response(
            {"code": "API_CREATED", "message": "API created", "api": {"id": api.id}},
            status=HTTPStatus.CREATED,
        )


class ApiApi(ManagementApiView):
    required_scopes = {"GET": ["read:apis"], "DELETE": ["delete:apis"]}

    @extend_schema(
        operation_id="get_api",
        responses={200: envelope("ApiRead", {"api": s.ApiDetailOut()}), **ERRORS},
    )
    def get(self, request: Request, api_id: str) -> Response:
        return Response({**OK, "api": s.ApiDetailOut(api_in_path(api_id)).data})

    @extend_schema(operation_id="delete_api", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, api_id: str) -> Response:
        services.api_delete(api=api_in_path(api_id), actor=self.actor())
        return Response(OK)


class ApiScopesApi(ManagementApiView):
    required_scopes = {"GET": ["read:api_scopes"], "POST": ["create:api_scopes"]}
    query_parameters = {"GET": PAGE_PARAMS}

    @extend_schema(
        operation_id="list_api_scopes",
        parameters=query_parameters["GET"],
        responses={200: list_envelope("ScopeList", "scopes", s.ScopeOut), **ERRORS},
    )
    def get(self, request: Request, api_id: str) -> Response:
        api = api_in_path(api_id)
        items, has_more = paginate(
            request,
            api.scopes.all(),
            order_field="id",
            cursor_value=lambda v: matches(SCOPE_ID_PATTERN, v),
        )
        return Response(list_body("scopes", serialized_list(s.ScopeOut, items), has_more))

    @extend_schema(
        operation_id="create_api_scope",
        request=s.ScopeCreateIn,
        responses={
            201: envelope(
                "ScopeCreated",
                {"scope": inline_serializer("ScopeId", {"id": serializers.CharField()})},
                "SCOPE_CREATED",
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request, api_id: str) -> Response:
        api = api_in_path(api_id)
        data = validated(s.ScopeCreateIn, self.body())
        scope = services.scope_create(
            api=api, key=data["key"], description=data["description"], actor=self.actor()
        )
        return Response(
            {"code": "SCOPE_CREATED", "message": "Scope created", "scope": {"id": scope.id}},
            status=HTTPStatus.CREATED,
        )


class ApiScopeApi(ManagementApiView):
    required_scopes = {
        "GET": ["read:api_scopes"],
        "PATCH": ["update:api_scopes"],
        "DELETE": ["delete:api_scopes"],
    }

    @extend_schema(
        operation_id="get_api_scope",
        responses={200: envelope("ScopeRead", {"scope": s.ScopeOut()}), **ERRORS},
    )
    def get(self, request: Request, api_id: str, scope_id: str) -> Response:
        scope = scope_in_path(api_in_path(api_id), scope_id)
        return Response({**OK, "scope": s.ScopeOut(scope).data})

    @extend_schema(
        operation_id="update_api_scope",
        request=s.ScopeUpdateIn,
        responses={200: OK_SCHEMA, **ERRORS},
    )
    def patch(self, request: Request, api_id: str, scope_id: str) -> Response:
        scope = scope_in_path(api_in_path(api_id), scope_id)
        data = validated(s.ScopeUpdateIn, self.body())
        services.scope_update(scope=scope, description=data["description"], actor=self.actor())
        return Response(OK)

    @extend_schema(operation_id="delete_api_scope", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, api_id: str, scope_id: str) -> Response:
        services.scope_delete(
            scope=scope_in_path(api_in_path(api_id), scope_id), actor=self.actor()
        )
        return Response(OK)
