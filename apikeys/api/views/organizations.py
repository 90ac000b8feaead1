"""Organizations and their members.

Rules:

- An organization is addressed by its code (``org_…``), in the path or the ``code`` query.
- The key policy (``…/api_key_policy``) is the one in force: the organization's own, or the
  platform default (``source`` says which); PUT replaces it whole.
- Adding users resolves every user id and role key first: one unknown id adds nobody (400
  naming ``users.<i>.id`` or ``users.<i>.roles``), then all are added in one transaction.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
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
    kinde_ignored,
    list_envelope,
    matches,
    org_in_path,
    serialized_list,
    validated,
)
from apikeys.models import USER_ID_PATTERN, Membership, Organization

POLICY_SCHEMA = envelope(
    "OrganizationApiKeyPolicy",
    {
        "api_key_policy": s.KeyPolicyOut(),
        "source": serializers.ChoiceField(choices=["organization", "platform_default"]),
    },
)


class OrganizationApi(ManagementApiView):
    required_scopes = {"GET": ["read:organizations"], "POST": ["create:organizations"]}
    query_parameters = {"GET": [OpenApiParameter("code", str, required=True)]}

    @extend_schema(
        operation_id="get_organization",
        parameters=query_parameters["GET"],
        responses={
            200: envelope("OrganizationRead", {"organization": s.OrganizationOut()}),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        query = validated(s.OrganizationQuery, request.query_params.dict())
        org = org_in_path(query["code"])
        return Response({**OK, "organization": s.OrganizationOut(org).data})

    @extend_schema(
        operation_id="create_organization",
        request=s.OrganizationCreateIn,
        responses={
            201: envelope(
                "OrganizationCreated",
                {
                    "organization": inline_serializer(
                        "OrganizationCode", {"code": serializers.CharField()}
                    )
                },
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.OrganizationCreateIn, self.body())
        org = services.organization_create(
            name=data["name"], code=data.get("code"), actor=self.actor()
        )
        return Response(
            {"code": "OK", "message": "Organization created", "organization": {"code": org.code}},
            status=HTTPStatus.CREATED,
        )


class OrganizationUpdateApi(ManagementApiView):
    required_scopes = {"PATCH": ["update:organizations"]}

    @extend_schema(
        operation_id="update_organization",
        request=s.OrganizationUpdateIn,
        responses={200: OK_SCHEMA, **ERRORS},
    )
    def patch(self, request: Request, org_code: str) -> Response:
        org = org_in_path(org_code)
        data = validated(s.OrganizationUpdateIn, self.body())
        services.organization_update(organization=org, name=data["name"], actor=self.actor())
        return Response(OK)


class OrganizationsApi(ManagementApiView):
    required_scopes = {"GET": ["read:organizations"]}
    query_parameters = {"GET": [*PAGE_PARAMS, *KINDE_LIST_PARAMS]}

    @extend_schema(
        operation_id="list_organizations",
        parameters=query_parameters["GET"],
        responses={
            200: list_envelope("OrganizationList", "organizations", s.OrganizationOut),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Organization.objects.all(),
            order_field="pk",
            cursor_value=lambda v: (
                Organization.objects.filter(code=v).values_list("pk", flat=True).first()
            ),
        )
        return Response(
            list_body("organizations", serialized_list(s.OrganizationOut, items), has_more)
        )


class OrganizationUsersApi(ManagementApiView):
    required_scopes = {"GET": ["read:organizations"], "POST": ["update:organizations"]}
    query_parameters = {
        "GET": [
            *PAGE_PARAMS,
            *KINDE_LIST_PARAMS,
            kinde_ignored("permissions"),
            kinde_ignored("roles"),
        ]
    }

    @extend_schema(
        operation_id="list_organization_users",
        parameters=query_parameters["GET"],
        responses={
            200: list_envelope("OrganizationUserList", "users", s.OrganizationUserOut),
            **ERRORS,
        },
    )
    def get(self, request: Request, org_code: str) -> Response:
        org = org_in_path(org_code)
        members = (
            Membership.objects.filter(organization=org)
            .select_related("user")
            .prefetch_related("roles")
        )
        items, has_more = paginate(
            request,
            members,
            order_field="user__public_id",
            cursor_value=lambda v: matches(USER_ID_PATTERN, v),
        )
        return Response(list_body("users", serialized_list(s.OrganizationUserOut, items), has_more))

    @extend_schema(
        operation_id="add_organization_users",
        request=s.OrganizationUsersIn,
        responses={
            200: envelope(
                "OrganizationUsersAdded",
                {"users_added": serializers.ListField(child=serializers.CharField())},
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request, org_code: str) -> Response:
        org = org_in_path(org_code)
        members = validated(s.OrganizationUsersIn, self.body())["members"]
        with transaction.atomic():
            for user, roles in members:
                services.membership_add(
                    organization=org, user=user, roles=roles, actor=self.actor()
                )
        return Response(
            {
                "code": "OK",
                "message": "Users added",
                "users_added": [u.public_id for u, _ in members],
            }
        )


class OrganizationKeyPolicyApi(ManagementApiView):
    """The organization's key policy: GET answers the policy in force for its keys (its own,
    or the platform default, as ``source`` says); PUT gives it a policy of its own (all three
    fields, ``null`` for no limit). Existing keys are not changed."""

    required_scopes = {"GET": ["read:organizations"], "PUT": ["update:organizations"]}

    @extend_schema(
        operation_id="get_organization_api_key_policy",
        responses={200: POLICY_SCHEMA, **ERRORS},
    )
    def get(self, request: Request, org_code: str) -> Response:
        org = org_in_path(org_code)
        return Response(_policy_body(services.key_policy_for_organization(org)))

    @extend_schema(
        operation_id="set_organization_api_key_policy",
        request=s.KeyPolicyIn,
        responses={200: POLICY_SCHEMA, **ERRORS},
    )
    def put(self, request: Request, org_code: str) -> Response:
        org = org_in_path(org_code)
        data = validated(s.KeyPolicyIn, self.body())
        policy = services.organization_key_policy_set(organization=org, **data, actor=self.actor())
        return Response(_policy_body(policy))


def _policy_body(policy: services.KeyPolicy) -> dict[str, Any]:
    return {**OK, "api_key_policy": s.KeyPolicyOut(policy).data, "source": policy.source}
