"""What would close the gap between the verify endpoint and the floor: a prototype, measured
by ``make bench`` beside the product, never served by the product.

Profiling the verify endpoint shows most of its time in the M2M token check, not in the
key check: django-oauth-toolkit's ``OAuth2Authentication`` builds an oauthlib request
(copying every header), runs oauthlib's bearer-token flow, and loads the token with
``select_related("application", "user")`` and ``first()``: every column of three tables,
sorted. This prototype answers the same question (is this an unexpired access token, of
which application, with which scopes?) with one narrow SQL statement on the same unique
index, no ORM query to compile and no oauthlib request to build. It is here only to
put a number on the proposal; the change itself belongs to ``apikeys/api/base.py``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import connection
from django.urls import path
from oauth2_provider.models import get_access_token_model, get_application_model
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from apikeys.api.base import ManagementTokenAuthentication
from apikeys.api.views import ApiKeyVerifyApi


class LeanTokenAuthentication(ManagementTokenAuthentication):
    """The access token of ``Authorization: Bearer …`` in one narrow SQL statement.

    Falls back to django-oauth-toolkit for anything unusual (a token restricted to a
    resource, no Bearer header), so behaviour stays DOT's where this shortcut has no say.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        words = get_authorization_header(request).split()
        if len(words) != 2 or words[0].lower() != b"bearer":
            return super().authenticate(request)
        try:
            token = words[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        access_model, application_model = get_access_token_model(), get_application_model()
        with connection.cursor() as cursor:
            cursor.execute(_token_sql(), [hashlib.sha256(token.encode()).hexdigest()])
            row = cursor.fetchone()
        if row is None:
            return None
        pk, stored, expires, scope, resource, user_id, app_pk, client_id, name = row
        # A JSON list; Django hands jsonb back as text. Restricted tokens go the long way.
        resource = json.loads(resource) if isinstance(resource, str) else resource
        if resource:
            return super().authenticate(request)
        access = access_model(
            pk=pk,
            token=stored,
            expires=expires,
            scope=scope,
            resource=resource,
            user_id=user_id,
            application_id=app_pk,
        )
        if app_pk is not None:
            access.application = application_model(pk=app_pk, client_id=client_id, name=name)
        # Found by the SHA-256 of the token, as django-oauth-toolkit finds it (the project
        # may store only that checksum, not the token).
        if access.is_expired():
            return None
        return None, access


def _token_sql() -> str:
    tokens = get_access_token_model()._meta.db_table
    applications = get_application_model()._meta.db_table
    return (
        f"SELECT t.id, t.token, t.expires, t.scope, t.resource, t.user_id, a.id, a.client_id, a.name "
        f"FROM {tokens} t LEFT JOIN {applications} a ON a.id = t.application_id "
        "WHERE t.token_checksum = %s"
    )


class LeanVerifyApi(ApiKeyVerifyApi):
    """The product's verify view, with the prototype token check."""

    authentication_classes = [LeanTokenAuthentication]
    schema = None


urlpatterns = [path("bench/whatif/verify", LeanVerifyApi.as_view(), name="bench-whatif-verify")]
