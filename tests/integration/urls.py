"""Views for the DRF integration tests: one per way a platform configures a protected view.

Mounted with ``pytest.mark.urls("tests.integration.urls")``; the project's own example
(``/example/users``) is also included, to test it in the same request pipeline.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import ApiKeyAuthentication
from apikeys.permissions import HasRequiredScopes, HasScopes
from apikeys.services import Verification


class OtherBearerAuthentication(BaseAuthentication):
    """Stands for any later scheme that accepts every Bearer token it is offered: it shows
    what reaches the next class after ours."""

    def authenticate(self, request: Request) -> tuple[Any, str] | None:
        words = request.headers.get("Authorization", "").split()
        if len(words) == 2 and words[0] == "Bearer":
            return OtherPrincipal(), f"other:{words[1]}"
        return None


class OtherPrincipal:
    is_authenticated = True


class HasAnyCredential(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return request.successful_authenticator is not None


class WhoAmI(APIView):
    """Says which credential authenticated the request and what it proved."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScopes("read:users")]
    renderer_classes = [JSONRenderer]

    def get(self, request: Request) -> Response:
        auth = request.auth
        user = request.user
        return Response(
            {
                "authenticator": type(request.successful_authenticator).__name__,
                "auth": auth if isinstance(auth, str) else type(auth).__name__,
                "key_id": auth.key_id if isinstance(auth, Verification) else None,
                "scopes": list(auth.scopes) if isinstance(auth, Verification) else None,
                # __class__, not type(): request.user may be a lazy object, as in Django.
                "user_type": user.__class__.__name__,
                "user_public_id": getattr(user, "public_id", None),
                "user_org_code": getattr(user, "org_code", None),
                "user_pk": str(user.pk) if getattr(user, "pk", None) is not None else None,
                "is_authenticated": bool(user and user.is_authenticated),
            }
        )


class BothScopes(WhoAmI):
    permission_classes = [HasScopes("read:users", "write:users")]


class DeclaredScopes(WhoAmI):
    permission_classes = [HasRequiredScopes]
    required_scopes = ["write:users"]


class EitherScope(WhoAmI):
    permission_classes = [HasScopes("admin:everything") | HasScopes("read:users")]


class AuthenticatedAndScope(WhoAmI):
    permission_classes = [IsAuthenticated & HasScopes("read:users")]


class UsersAudience(WhoAmI):
    api_key_audience = "https://users.example.com"


class BillingAudience(WhoAmI):
    api_key_audience = "https://billing.example.com"


class KeyOrOtherBearer(WhoAmI):
    authentication_classes = [ApiKeyAuthentication, OtherBearerAuthentication]
    permission_classes = [HasAnyCredential]


class KeyOrOAuthToken(WhoAmI):
    authentication_classes = [ApiKeyAuthentication, OAuth2Authentication]
    permission_classes = [HasAnyCredential]


class KeyOrSession(WhoAmI):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]


urlpatterns = [
    path("whoami", WhoAmI.as_view()),
    path("both-scopes", BothScopes.as_view()),
    path("declared-scopes", DeclaredScopes.as_view()),
    path("either-scope", EitherScope.as_view()),
    path("authenticated-and-scope", AuthenticatedAndScope.as_view()),
    path("users-audience", UsersAudience.as_view()),
    path("billing-audience", BillingAudience.as_view()),
    path("key-or-other-bearer", KeyOrOtherBearer.as_view()),
    path("key-or-oauth-token", KeyOrOAuthToken.as_view()),
    path("key-or-session", KeyOrSession.as_view()),
    path("example/", include("project.example")),
]
