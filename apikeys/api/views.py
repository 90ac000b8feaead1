"""Management API views: validate → service → serialize.

Ids in the path that do not exist (or that the caller may not see) are 404 with the
contract's code; ids in the body that do not exist are 400 (the services raise those).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import conf, services
from apikeys import exceptions as errors
from apikeys.api import schema as _schema  # noqa: F401  (registers the security scheme)
from apikeys.api import serializers as s
from apikeys.api.base import OK, ManagementApiView, list_body, paginate
from apikeys.api.errors import ApiError, bad_request, json_error, not_found
from apikeys.http import client_ip
from apikeys.models import (
    API_ID_PATTERN,
    API_KEY_ID_PATTERN,
    SCOPE_ID_PATTERN,
    USER_ID_PATTERN,
    Api,
    ApiKey,
    Membership,
    Organization,
    Role,
    Scope,
    SystemPermission,
)
from apikeys.ratelimit import record_failure

User = get_user_model()

ERRORS = {
    400: s.ErrorOut,
    401: s.ErrorOut,
    403: s.ErrorOut,
    404: s.ErrorOut,
    409: s.ErrorOut,
    411: s.ErrorOut,
    413: s.ErrorOut,
    415: s.ErrorOut,
}
PAGE_PARAMS = [
    OpenApiParameter("page_size", int, description="1 to 100 (default 50)."),
    OpenApiParameter("starting_after", str, description="The last id of the previous page."),
]


# Starts the description of every accepted-but-ignored parameter in the OpenAPI document.
IGNORED_PREFIX = "Ignored."


def kinde_ignored(name: str) -> OpenApiParameter:
    """A query parameter Kinde's Management API defines for the path and this service does
    not implement: accepted (a Kinde client keeps working) and ignored, and documented as
    such. Any value is accepted, so it has no enum (a fuzzer would call a refusal wrong)."""
    return OpenApiParameter(
        name,
        str,
        description=f"{IGNORED_PREFIX} Kinde's Management API defines it for this path; this "
        "service accepts it for compatibility and ignores it (lists come newest first, one "
        "page at a time through page_size and starting_after).",
    )


# Kinde's cursor and order for its lists: ignored here (starting_after and newest first).
KINDE_LIST_PARAMS = [kinde_ignored("sort"), kinde_ignored("next_token")]


def _envelope(name: str, item: Any, code: str = "OK", message: str = "Success") -> Any:
    return inline_serializer(
        name=name,
        fields={
            "code": serializers.CharField(default=code),
            "message": serializers.CharField(default=message),
            **item,
        },
    )


def _list_envelope(name: str, key: str, item: Any) -> Any:
    return inline_serializer(
        name=name,
        fields={
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "has_more": serializers.BooleanField(),
            key: item(many=True),
        },
    )


OK_SCHEMA = _envelope("Ok", {})


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _matches(pattern: str, value: str) -> str | None:
    return value if re.fullmatch(pattern, value) else None


def _filter_value(
    request: Request, name: str, allowed: tuple[str, ...] | None = None
) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    # An empty filter is refused, not ignored: ``?org_code=`` built from a missing value
    # would otherwise silently list every organization's keys.
    if value == "":
        raise bad_request("INVALID_FILTER", f"{name} cannot be empty; leave it out instead.", name)
    if allowed is not None and value not in allowed:
        raise bad_request("INVALID_FILTER", f"{name} must be one of: {', '.join(allowed)}.", name)
    return value


# --------------------------------------------------------------------------- lookups


def _api_in_path(api_id: str) -> Api:
    api = Api.objects.filter(pk=api_id).first() if re.fullmatch(API_ID_PATTERN, api_id) else None
    if api is None:
        raise not_found("API_NOT_FOUND", "No API with that id.")
    return api


def _key_in_path(key_id: str) -> ApiKey:
    key = (
        ApiKey.objects.filter(pk=key_id).first()
        if re.fullmatch(API_KEY_ID_PATTERN, key_id)
        else None
    )
    if key is None:
        raise not_found("API_KEY_NOT_FOUND", "No API key with that id.")
    return key


def _scope_in_path(api: Api, scope_id: str) -> Scope:
    scope = Scope.objects.filter(api=api, pk=scope_id).first()
    if scope is None:
        raise not_found("SCOPE_NOT_FOUND", "No scope with that id in this API.")
    return scope


def _org_in_path(code: str) -> Organization:
    org = Organization.objects.filter(code=code).first()
    if org is None:
        raise not_found("ORGANIZATION_NOT_FOUND", "No organization with that code.")
    return org


def _role_in_path(role_id: str) -> Role:
    role = (
        Role.objects.filter(pk=role_id).first() if re.fullmatch(API_ID_PATTERN, role_id) else None
    )
    if role is None:
        raise not_found("ROLE_NOT_FOUND", "No role with that id.")
    return role


def _api_in_body(api_id: str) -> Api:
    api = Api.objects.filter(pk=api_id).first() if re.fullmatch(API_ID_PATTERN, api_id) else None
    if api is None:
        raise errors.ApiNotFound(field="api_id")
    return api


def _org_in_body(code: str, field: str) -> Organization:
    org = Organization.objects.filter(code=code).first()
    if org is None:
        raise errors.OrganizationNotFound(field=field)
    return org


def _user_in_body(user_id: str, field: str) -> Any:
    user = (
        User.objects.filter(public_id=user_id).first()
        if re.fullmatch(USER_ID_PATTERN, user_id)
        else None
    )
    if user is None:
        raise errors.UserNotFound(field=field)
    return user


def _secret_response(body: dict[str, Any], status: int) -> Response:
    # A key is in this body: no cache anywhere may keep it.
    return Response(
        body, status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


# --------------------------------------------------------------------------- API keys


class ApiKeysApi(ManagementApiView):
    required_scopes = {"GET": ["read:api_keys"], "POST": ["create:api_keys"]}
    query_parameters = {
        "GET": [
            *PAGE_PARAMS,
            OpenApiParameter("key_type", str, enum=["organization", "user"]),
            OpenApiParameter("status", str, enum=["active", "revoked", "expired"]),
            OpenApiParameter("user_id", str),
            OpenApiParameter("org_code", str),
            OpenApiParameter("api_id", str),
        ]
    }

    @extend_schema(
        operation_id="list_api_keys",
        parameters=query_parameters["GET"],
        responses={200: _list_envelope("ApiKeyList", "api_keys", s.ApiKeyOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        keys = ApiKey.objects.defer("digest", "previous_digest", "previous_expires_at")
        key_type = _filter_value(request, "key_type", ("organization", "user"))
        if key_type == "organization":
            keys = keys.exclude(org_code="")
        elif key_type == "user":
            keys = keys.exclude(user_public_id="")
        status = _filter_value(request, "status", ("active", "revoked", "expired"))
        now = timezone.now()
        if status == "revoked":
            keys = keys.filter(status=ApiKey.Status.REVOKED)
        elif status == "active":
            keys = keys.filter(status=ApiKey.Status.ACTIVE).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        elif status == "expired":
            keys = keys.filter(status=ApiKey.Status.ACTIVE, expires_at__lte=now)
        for param, column in (
            ("user_id", "user_public_id"),
            ("org_code", "org_code"),
            ("api_id", "api_public_id"),
        ):
            value = _filter_value(request, param)
            if value is not None:
                keys = keys.filter(**{column: value})
        items, has_more = paginate(
            request, keys, order_field="id", cursor_value=lambda v: _matches(API_KEY_ID_PATTERN, v)
        )
        return Response(list_body("api_keys", s.ApiKeyOut(items, many=True).data, has_more))

    @extend_schema(
        operation_id="create_api_key",
        request=s.ApiKeyCreateIn,
        responses={
            201: _envelope(
                "ApiKeyCreated", {"api_key": s.SecretOut()}, "API_KEY_CREATED", "API key created"
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ApiKeyCreateIn, self.body())
        api = _api_in_body(data["api_id"])
        org_code, user_id = data.get("org_code") or None, data.get("user_id") or None
        if org_code and user_id:
            raise errors.OwnerAmbiguous()
        if not org_code and not user_id:
            raise errors.OwnerRequired()
        owner_type = "organization" if org_code else "user"
        if data.get("type") and data["type"] != owner_type:
            raise bad_request(
                "OWNER_TYPE_MISMATCH",
                f"type is {data['type']!r} but the owner given is a {owner_type}.",
                "type",
            )
        issued = services.api_key_issue(
            name=data["name"],
            api=api,
            scopes=data["scope_ids"],
            organization=_org_in_body(org_code, "org_code") if org_code else None,
            user=_user_in_body(user_id, "user_id") if user_id else None,
            expires_at=data.get("expires_at"),
            actor=self.actor(),
        )
        return _secret_response(
            {
                "message": "API key created",
                "code": "API_KEY_CREATED",
                "api_key": {"id": issued.api_key.id, "key": issued.plaintext},
            },
            HTTPStatus.CREATED,
        )


class ApiKeyApi(ManagementApiView):
    required_scopes = {
        "GET": ["read:api_keys"],
        "PUT": ["update:api_keys"],
        "DELETE": ["delete:api_keys"],
    }

    @extend_schema(
        operation_id="get_api_key",
        responses={200: _envelope("ApiKeyRead", {"api_key": s.ApiKeyOut()}), **ERRORS},
    )
    def get(self, request: Request, key_id: str) -> Response:
        key = _key_in_path(key_id)
        return Response({**OK, "api_key": s.ApiKeyOut(key).data})

    @extend_schema(
        operation_id="rotate_api_key",
        request=s.ApiKeyRotateIn,
        responses={
            201: _envelope(
                "ApiKeyRotated",
                {"api_key": s.SecretOut()},
                "API_KEY_ROTATED",
                "API key rotated successfully",
            ),
            **ERRORS,
        },
    )
    def put(self, request: Request, key_id: str) -> Response:
        key = _key_in_path(key_id)
        data = validated(s.ApiKeyRotateIn, self.body())
        issued = services.api_key_rotate(
            api_key=key, grace_seconds=data["expire_previous_in"], actor=self.actor()
        )
        return _secret_response(
            {
                "code": "API_KEY_ROTATED",
                "message": "API key rotated successfully",
                "api_key": {"id": issued.api_key.id, "key": issued.plaintext},
            },
            HTTPStatus.CREATED,
        )

    @extend_schema(operation_id="revoke_api_key", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, key_id: str) -> Response:
        key = _key_in_path(key_id)
        services.api_key_revoke(api_key=key, actor=self.actor())
        return Response({"message": "Success", "code": "OK"})


_VERIFY_MESSAGES = {
    services.Verification.VERIFIED: "API key verified",
    services.Verification.INVALID: "API key is not valid",
    services.Verification.REVOKED: "API key has been revoked",
    services.Verification.EXPIRED: "API key has expired",
    services.Verification.WRONG_AUDIENCE: "API key is not valid for this audience",
}


class ApiKeyVerifyApi(ManagementApiView):
    """Is this key valid, for which organization or user, with which scopes? Always 200 for
    a string key: `is_valid` and `code` say the outcome (API_KEY_VERIFIED, API_KEY_INVALID,
    API_KEY_REVOKED, API_KEY_EXPIRED, API_KEY_WRONG_AUDIENCE); pass `audience` to refuse keys
    of other APIs. A valid verification is counted. Failed verifications past the limit
    answer 429 while valid keys keep verifying.

    (The hot path: one query for the token, one statement for the key.)"""

    required_scopes = {"POST": ["verify:api_keys", "read:api_keys"]}

    @extend_schema(
        operation_id="verify_api_key",
        request=s.ApiKeyVerifyIn,
        responses={200: s.VerificationOut, 429: s.ErrorOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.body()
        unknown = set(data) - {"api_key", "audience"}
        if unknown:
            name = min(unknown)
            raise bad_request("UNKNOWN_FIELD", f"Unknown field {name[:64]!r}.", name[:64])
        key = data.get("api_key")
        if key is None:
            raise bad_request("FIELD_REQUIRED", "api_key is required.", "api_key")
        if not isinstance(key, str) or not key:
            raise bad_request("INVALID_FIELD", "api_key must be a non-empty string.", "api_key")
        audience = data.get("audience")
        if audience is not None and (
            not isinstance(audience, str) or not audience or "\x00" in audience
        ):
            raise bad_request("INVALID_FIELD", "audience must be a non-empty string.", "audience")
        result = services.api_key_verify(key=key, audience=audience, ip=client_ip(request))
        if not result.is_valid:
            self._limit_failures(request)
        return Response(
            {
                "code": result.code,
                "message": _VERIFY_MESSAGES[result.code],
                "is_valid": result.is_valid,
                "key_id": result.key_id,
                "status": result.status,
                "scopes": list(result.scopes),
                "org_code": result.org_code,
                "user_id": result.user_id,
                "last_verified_on": s.iso(result.last_verified_on),
                "verification_count": result.verification_count,
                "api_id": result.api_id,
                "audience": result.audience,
                "expires_at": s.iso(result.expires_at),
            }
        )

    def _limit_failures(self, request: Request) -> None:
        # client_id, not the row id: unique across databases that share one cache.
        client_id = getattr(getattr(request.auth, "application", None), "client_id", "")
        retry_after = record_failure(
            f"verify:{client_id}",
            limit=conf.get("VERIFY_FAILURE_LIMIT"),
            window=conf.get("VERIFY_FAILURE_WINDOW"),
        )
        if retry_after is not None:
            raise ApiError(
                status=HTTPStatus.TOO_MANY_REQUESTS,
                code="RATE_LIMITED",
                message="Too many failed verifications; try again later.",
                headers={"Retry-After": str(retry_after), "RateLimit-Reset": str(retry_after)},
            )


# --------------------------------------------------------------------------- APIs and scopes


class ApisApi(ManagementApiView):
    required_scopes = {"GET": ["read:apis"], "POST": ["create:apis"]}
    query_parameters = {"GET": [*PAGE_PARAMS, kinde_ignored("expand")]}

    @extend_schema(
        operation_id="list_apis",
        parameters=query_parameters["GET"],
        responses={200: _list_envelope("ApiList", "apis", s.ApiOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Api.objects.all(),
            order_field="id",
            cursor_value=lambda v: _matches(API_ID_PATTERN, v),
        )
        return Response(list_body("apis", s.ApiOut(items, many=True).data, has_more))

    @extend_schema(
        operation_id="create_api",
        request=s.ApiCreateIn,
        responses={
            201: _envelope(
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
        responses={200: _envelope("ApiRead", {"api": s.ApiDetailOut()}), **ERRORS},
    )
    def get(self, request: Request, api_id: str) -> Response:
        return Response({**OK, "api": s.ApiDetailOut(_api_in_path(api_id)).data})

    @extend_schema(operation_id="delete_api", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, api_id: str) -> Response:
        services.api_delete(api=_api_in_path(api_id), actor=self.actor())
        return Response(OK)


class ApiScopesApi(ManagementApiView):
    required_scopes = {"GET": ["read:api_scopes"], "POST": ["create:api_scopes"]}
    query_parameters = {"GET": PAGE_PARAMS}

    @extend_schema(
        operation_id="list_api_scopes",
        parameters=query_parameters["GET"],
        responses={200: _list_envelope("ScopeList", "scopes", s.ScopeOut), **ERRORS},
    )
    def get(self, request: Request, api_id: str) -> Response:
        api = _api_in_path(api_id)
        items, has_more = paginate(
            request,
            api.scopes.all(),
            order_field="id",
            cursor_value=lambda v: _matches(SCOPE_ID_PATTERN, v),
        )
        return Response(list_body("scopes", s.ScopeOut(items, many=True).data, has_more))

    @extend_schema(
        operation_id="create_api_scope",
        request=s.ScopeCreateIn,
        responses={
            201: _envelope(
                "ScopeCreated",
                {"scope": inline_serializer("ScopeId", {"id": serializers.CharField()})},
                "SCOPE_CREATED",
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request, api_id: str) -> Response:
        api = _api_in_path(api_id)
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
        responses={200: _envelope("ScopeRead", {"scope": s.ScopeOut()}), **ERRORS},
    )
    def get(self, request: Request, api_id: str, scope_id: str) -> Response:
        scope = _scope_in_path(_api_in_path(api_id), scope_id)
        return Response({**OK, "scope": s.ScopeOut(scope).data})

    @extend_schema(
        operation_id="update_api_scope",
        request=s.ScopeUpdateIn,
        responses={200: OK_SCHEMA, **ERRORS},
    )
    def patch(self, request: Request, api_id: str, scope_id: str) -> Response:
        scope = _scope_in_path(_api_in_path(api_id), scope_id)
        data = validated(s.ScopeUpdateIn, self.body())
        services.scope_update(scope=scope, description=data["description"], actor=self.actor())
        return Response(OK)

    @extend_schema(operation_id="delete_api_scope", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, api_id: str, scope_id: str) -> Response:
        services.scope_delete(
            scope=_scope_in_path(_api_in_path(api_id), scope_id), actor=self.actor()
        )
        return Response(OK)


# --------------------------------------------------------------------------- organizations


class OrganizationApi(ManagementApiView):
    required_scopes = {"GET": ["read:organizations"], "POST": ["create:organizations"]}
    query_parameters = {"GET": [OpenApiParameter("code", str, required=True)]}

    @extend_schema(
        operation_id="get_organization",
        parameters=query_parameters["GET"],
        responses={
            200: _envelope("OrganizationRead", {"organization": s.OrganizationOut()}),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        code = request.query_params.get("code")
        if not code:
            raise bad_request("FIELD_REQUIRED", "The code query parameter is required.", "code")
        return Response({**OK, "organization": s.OrganizationOut(_org_in_path(code)).data})

    @extend_schema(
        operation_id="create_organization",
        request=s.OrganizationCreateIn,
        responses={
            201: _envelope(
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
        org = _org_in_path(org_code)
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
            200: _list_envelope("OrganizationList", "organizations", s.OrganizationOut),
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
            list_body("organizations", s.OrganizationOut(items, many=True).data, has_more)
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
            200: _list_envelope("OrganizationUserList", "users", s.OrganizationUserOut),
            **ERRORS,
        },
    )
    def get(self, request: Request, org_code: str) -> Response:
        org = _org_in_path(org_code)
        members = (
            Membership.objects.filter(organization=org)
            .select_related("user")
            .prefetch_related("roles")
        )
        items, has_more = paginate(
            request,
            members,
            order_field="user__public_id",
            cursor_value=lambda v: _matches(USER_ID_PATTERN, v),
        )
        users = [
            {
                "id": m.user.public_id,
                "email": m.user.email,
                "full_name": m.user.get_full_name(),
                "roles": sorted(r.key for r in m.roles.all()),
            }
            for m in items
        ]
        return Response(list_body("users", users, has_more))

    @extend_schema(
        operation_id="add_organization_users",
        request=s.OrganizationUsersIn,
        responses={
            200: _envelope(
                "OrganizationUsersAdded",
                {"users_added": serializers.ListField(child=serializers.CharField())},
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request, org_code: str) -> Response:
        org = _org_in_path(org_code)
        data = validated(s.OrganizationUsersIn, self.body())
        # Resolve everything first, so that one unknown id adds nobody.
        wanted = []
        for index, member in enumerate(data["users"]):
            user = _user_in_body(member["id"], f"users.{index}.id")
            roles = []
            for key in member["roles"]:
                role = Role.objects.filter(key=key).first()
                if role is None:
                    raise errors.RoleNotFound(
                        f"No role with key {key[:64]!r}.", field=f"users.{index}.roles"
                    )
                roles.append(role)
            wanted.append((user, roles))
        with transaction.atomic():
            for user, roles in wanted:
                services.membership_add(
                    organization=org, user=user, roles=roles, actor=self.actor()
                )
        return Response(
            {
                "code": "OK",
                "message": "Users added",
                "users_added": [u.public_id for u, _ in wanted],
            }
        )


# --------------------------------------------------------------------------- users


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
        user_id = request.query_params.get("id") or ""
        user = (
            User.objects.filter(public_id=user_id).first()
            if re.fullmatch(USER_ID_PATTERN, user_id)
            else None
        )
        if user is None:
            raise not_found("USER_NOT_FOUND", "No user with that id.")
        return Response(s.UserOut(user).data)

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
        responses={200: _list_envelope("UserList", "users", s.UserOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        users = User.objects.all()
        email = _filter_value(request, "email")
        if email is not None:
            users = users.filter(email__iexact=email)
        user_id = _filter_value(request, "user_id")
        if user_id is not None:
            users = users.filter(public_id=user_id)
        items, has_more = paginate(
            request,
            users,
            order_field="public_id",
            cursor_value=lambda v: _matches(USER_ID_PATTERN, v),
        )
        return Response(list_body("users", s.UserOut(items, many=True).data, has_more))


# --------------------------------------------------------------------------- roles


class RolesApi(ManagementApiView):
    required_scopes = {"GET": ["read:roles"], "POST": ["create:roles"]}
    query_parameters = {"GET": [*PAGE_PARAMS, *KINDE_LIST_PARAMS]}

    @extend_schema(
        operation_id="list_roles",
        parameters=query_parameters["GET"],
        responses={200: _list_envelope("RoleList", "roles", s.RoleOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Role.objects.all(),
            order_field="id",
            cursor_value=lambda v: _matches(API_ID_PATTERN, v),
        )
        return Response(list_body("roles", s.RoleOut(items, many=True).data, has_more))

    @extend_schema(
        operation_id="create_role",
        request=s.RoleCreateIn,
        responses={
            201: _envelope(
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
        role = _role_in_path(role_id)
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
            200: _list_envelope(
                "SystemPermissionList", "system_permissions", s.SystemPermissionOut
            ),
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
            list_body(
                "system_permissions",
                [{"key": p.key, "description": p.description} for p in items],
                has_more,
            )
        )


# --------------------------------------------------------------------------- portal links


class PortalLinkApi(ManagementApiView):
    required_scopes = {"POST": ["create:portal_links"]}

    @extend_schema(
        operation_id="generate_portal_url",
        request=s.PortalLinkIn,
        responses={200: inline_serializer("PortalUrl", {"url": serializers.CharField()}), **ERRORS},
    )
    def post(self, request: Request) -> Response:
        from portal.services import portal_base_url, portal_link_create

        data = validated(s.PortalLinkIn, self.body())
        user = _user_in_body(data["user_id"], "user_id")
        org_code = data.get("organization_code") or None
        url = portal_link_create(
            user=user,
            organization=_org_in_body(org_code, "organization_code") if org_code else None,
            return_url=data.get("return_url") or None,
            sub_nav=data.get("sub_nav") or None,
            base_url=portal_base_url(request),
            actor=self.actor(),
        )
        # The URL signs its user in: no cache may keep it.
        return _secret_response({"url": url}, HTTPStatus.OK)


# --------------------------------------------------------------------------- fallbacks


# Exempt from CSRF like every DRF view of the API (which is token-authenticated, never
# cookie-authenticated): otherwise a POST to a mistyped path would meet Django's HTML CSRF
# page before this JSON 404.
@csrf_exempt
def route_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any unknown route under /api/v1/, whatever the method: JSON, never an HTML page."""
    return json_error(HTTPStatus.NOT_FOUND, "ROUTE_NOT_FOUND", "No such route.")
