"""API keys: list, issue, read, rotate, revoke, and verify.

Rules:

- A key's secret appears in exactly two responses, issue (201) and rotate (201), both sent
  with ``Cache-Control: no-store``; nothing else ever returns more than its prefix and suffix.
- A key has exactly one owner, an organization (``org_code``) or a user (``user_id``);
  ``type``, when given, must agree with it.
- Verify answers 200 for any string key, the outcome in ``is_valid`` and ``code``; failed
  verifications past the limit are 429 for that client while valid keys keep verifying.
- Lists read only columns of the key row (no digest is even loaded).
"""

from __future__ import annotations

from datetime import date
from http import HTTPStatus
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import conf, selectors, services
from apikeys.api import serializers as s
from apikeys.api.base import OK, ManagementApiView, list_body, paginate
from apikeys.api.errors import ApiError
from apikeys.api.views._common import (
    ERRORS,
    OK_SCHEMA,
    PAGE_PARAMS,
    envelope,
    key_in_path,
    list_envelope,
    matches,
    secret_response,
    serialized_list,
    validated,
)
from apikeys.http import client_ip
from apikeys.models import API_KEY_ID_PATTERN, ApiKey
from apikeys.ratelimit import record_failure


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
        responses={200: list_envelope("ApiKeyList", "api_keys", s.ApiKeyOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = validated(s.ApiKeyListQuery, request.query_params.dict())
        keys = _filtered_keys(query)
        items, has_more = paginate(
            request, keys, order_field="id", cursor_value=lambda v: matches(API_KEY_ID_PATTERN, v)
        )
        return Response(list_body("api_keys", serialized_list(s.ApiKeyOut, items), has_more))

    @extend_schema(
        operation_id="create_api_key",
        request=s.ApiKeyCreateIn,
        responses={
            201: envelope(
                "ApiKeyCreated", {"api_key": s.SecretOut()}, "API_KEY_CREATED", "API key created"
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.ApiKeyCreateIn, self.body())
        issued = services.api_key_issue(
            name=data["name"],
            api=data["api"],
            scopes=data["scope_ids"],
            organization=data["organization"],
            user=data["user"],
            expires_at=data.get("expires_at"),
            ratelimit=data.get("ratelimit"),
            credits=data.get("credits"),
            actor=self.actor(),
        )
        return secret_response(
            {
                "message": "API key created",
                "code": "API_KEY_CREATED",
                "api_key": {"id": issued.api_key.id, "key": issued.plaintext},
            },
            HTTPStatus.CREATED,
        )


def _filtered_keys(query: dict[str, Any]) -> QuerySet[ApiKey]:
    """The keys the validated list ``query`` selects, without their secret material."""
    keys = ApiKey.objects.defer("digest", "previous_digest", "previous_expires_at")
    key_type = query.get("key_type")
    if key_type == "organization":
        keys = keys.exclude(org_code="")
    elif key_type == "user":
        keys = keys.exclude(user_public_id="")
    status = query.get("status")
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
        value = query.get(param)
        if value is not None:
            keys = keys.filter(**{column: value})
    return keys


class ApiKeyApi(ManagementApiView):
    required_scopes = {
        "GET": ["read:api_keys"],
        "PUT": ["update:api_keys"],
        "PATCH": ["update:api_keys"],
        "DELETE": ["delete:api_keys"],
    }

    @extend_schema(
        operation_id="update_api_key",
        request=s.ApiKeyUpdateIn,
        responses={200: envelope("ApiKeyUpdated", {"api_key": s.ApiKeyOut()}), **ERRORS},
    )
    def patch(self, request: Request, key_id: str) -> Response:
        """Change an active key's name, usage limits (null removes one) or expiry."""
        key = key_in_path(key_id)
        data = validated(s.ApiKeyUpdateIn, self.body())
        changed = services.api_key_update(api_key=key, actor=self.actor(), **data)
        return Response({**OK, "api_key": s.ApiKeyOut(key_in_path(changed.id)).data})

    @extend_schema(
        operation_id="get_api_key",
        responses={200: envelope("ApiKeyRead", {"api_key": s.ApiKeyOut()}), **ERRORS},
    )
    def get(self, request: Request, key_id: str) -> Response:
        key = key_in_path(key_id)
        return Response({**OK, "api_key": s.ApiKeyOut(key).data})

    @extend_schema(
        operation_id="rotate_api_key",
        request=s.ApiKeyRotateIn,
        responses={
            201: envelope(
                "ApiKeyRotated",
                {"api_key": s.SecretOut()},
                "API_KEY_ROTATED",
                "API key rotated successfully",
            ),
            **ERRORS,
        },
    )
    def put(self, request: Request, key_id: str) -> Response:
        key = key_in_path(key_id)
        data = validated(s.ApiKeyRotateIn, self.body())
        issued = services.api_key_rotate(
            api_key=key, grace_seconds=data["expire_previous_in"], actor=self.actor()
        )
        return secret_response(
            {
                "code": "API_KEY_ROTATED",
                "message": "API key rotated successfully",
                "api_key": {"id": issued.api_key.id, "key": issued.plaintext},
            },
            HTTPStatus.CREATED,
        )

    @extend_schema(operation_id="revoke_api_key", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, key_id: str) -> Response:
        key = key_in_path(key_id)
        services.api_key_revoke(api_key=key, actor=self.actor())
        return Response({"message": "Success", "code": "OK"})


_LIMIT_CODES = frozenset({services.Verification.RATE_LIMITED, services.Verification.USAGE_EXCEEDED})


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
        body = self.body()
        data = s.ApiKeyVerifyIn.plainly_valid(body) or validated(s.ApiKeyVerifyIn, body)
        result = services.api_key_verify(
            key=data["api_key"],
            audience=data.get("audience"),
            ip=client_ip(request),
            cost=data.get("cost", 1),
        )
        if not result.is_valid and result.code not in _LIMIT_CODES:
            # Failures count against guessing; a good key over its own limits is no guess.
            self._limit_failures(request)
        return Response(s.verification_answer(result))

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


class ApiKeyUsageApi(ManagementApiView):
    """A key's usage history: one bucket per day or hour from `from` to `to` (dates, UTC,
    inclusive), zeros included, oldest first."""

    required_scopes = {"GET": ["read:api_keys"]}
    query_parameters = {
        "GET": [
            OpenApiParameter("from", str, required=True, description="YYYY-MM-DD"),
            OpenApiParameter("to", str, required=True, description="YYYY-MM-DD, inclusive"),
            OpenApiParameter("granularity", str, enum=["day", "hour"]),
        ]
    }

    @extend_schema(
        operation_id="get_api_key_usage",
        parameters=query_parameters["GET"],
        responses={200: envelope("ApiKeyUsage", {"usage": s.UsageBucketOut(many=True)}), **ERRORS},
    )
    def get(self, request: Request, key_id: str) -> Response:
        key = key_in_path(key_id)
        params = request.query_params
        start, end = _date_param(params, "from"), _date_param(params, "to")
        granularity = params.get("granularity", "day")
        buckets = selectors.api_key_usage(
            api_key=key, start=start, end=end, granularity=granularity
        )
        return Response({**OK, "usage": s.UsageBucketOut(buckets, many=True).data})


def _date_param(params: Any, name: str) -> date:
    value = params.get(name)
    try:
        if value is None or len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            status=HTTPStatus.BAD_REQUEST,
            code="INVALID_FIELD",
            message=f"{name} must be a date, YYYY-MM-DD.",
            field=name,
        ) from None
