"""An example protected API, reproducing the server side of Kinde's API-keys quick start.

``GET /example/users`` with ``Authorization: Bearer k_live_…``:

- no key, or a key that does not verify: 401 "Invalid API key" (``API_KEY_MISSING``,
  ``API_KEY_INVALID``, ``API_KEY_REVOKED``, ``API_KEY_EXPIRED``);
- a valid key without the ``read:users`` scope: 403 "Insufficient scope" (``INSUFFICIENT_SCOPE``);
- a valid key with it: 200 and the data, plus what the key proved (``request.auth``).

It accepts keys of any API (no ``api_key_audience``), so that the demo keys of ``make run``
work against it. The users it lists are fixed sample data, never the platform's real users:
the route ships with the project, production included.
"""

from __future__ import annotations

from typing import Any, cast

from django.urls import path
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import ApiKeyAuthentication
from apikeys.permissions import HasScopes
from apikeys.services import Verification

app_name = "example"

SAMPLE_USERS: list[dict[str, Any]] = [
    {"id": "usr_1", "name": "Ada Lovelace", "email": "ada@example.com"},
    {"id": "usr_2", "name": "Grace Hopper", "email": "grace@example.com"},
]


class ExampleUserListApi(APIView):
    """The users of the example platform, for any key carrying ``read:users``."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScopes("read:users")]
    # JSON only: a browser gets the same coded errors as a client, not the browsable API.
    renderer_classes = [JSONRenderer]
    # Not part of the Management API, so kept out of its OpenAPI document.
    schema = None

    def get(self, request: Request) -> Response:
        # HasScopes has let the request through, so ApiKeyAuthentication authenticated it.
        verification = cast(Verification, request.auth)
        return Response(
            {
                "users": SAMPLE_USERS,
                "api_key": {
                    "key_id": verification.key_id,
                    "org_code": verification.org_code,
                    "user_id": verification.user_id,
                    "scopes": list(verification.scopes),
                },
            }
        )


urlpatterns = [
    path("users", ExampleUserListApi.as_view(), name="users"),
]
