"""DRF authentication with API keys: ``Authorization: Bearer k_live_…``.

A platform protects its own DRF views with the keys this service issues, in-process and
without an HTTP round trip::

    class UserListApi(APIView):
        authentication_classes = [ApiKeyAuthentication]
        permission_classes = [HasScopes("read:users")]
        api_key_audience = "https://users.example.com"  # optional: refuse other APIs' keys

Every key goes through :func:`apikeys.services.api_key_verify`, the service behind the
Management API's verify endpoint, so counting, expiry, revocation, rotation and audience
behave identically here: a revoked key is refused on the very next request, on every worker.

What a request carries once authenticated
-----------------------------------------
- ``request.auth`` is the :class:`~apikeys.services.Verification` (``key_id``,
  ``org_code``, ``user_id``, ``scopes``, ``api_id``, ``audience``, ``expires_at``, …).
- ``request.user`` is the owning user for a user-level key, and an
  :class:`OrganizationPrincipal` for an organization-level key (no query). With Redis (the
  key cache), whether the user is active is known without a query, and the user itself is
  read only when the view first touches ``request.user`` (a lazy object); otherwise it is
  read here (one query). The principal is
  authenticated (``IsAuthenticated`` lets it through) but is not a user: it has no
  permissions, is not staff, and its ``pk`` is the organization code, so DRF's per-user
  throttles count per organization. Code that needs a real user should check
  ``request.auth.user_id``.

Failures
--------
A key that does not verify answers 401 with
``WWW-Authenticate: Bearer realm="api", error="invalid_token"`` and the contract's body
``{"errors": [{"code": "API_KEY_INVALID" | "API_KEY_REVOKED" | "API_KEY_EXPIRED" |
"API_KEY_WRONG_AUDIENCE", "message": "Invalid API key"}]}``. The key of a deactivated user
(``is_active`` false) is refused as ``API_KEY_INVALID``, as Django refuses such users a
sign-in. Neither the key nor any part of it ever reaches a log line or an error body.

Refusals are limited per client IP, as the verify endpoint limits them per application:
past ``APIKEYS["AUTHENTICATION_FAILURE_LIMIT"]`` in ``AUTHENTICATION_FAILURE_WINDOW``
seconds, a refused key answers 429 ``{"errors": [{"code": "RATE_LIMITED", …}]}`` with
``Retry-After`` and ``RateLimit-Reset`` (set on the view, so whatever exception handler the
platform uses sends them), while valid keys still authenticate: guessing gets nowhere, and
a noisy client cannot lock anyone out. When the cache is down the limit steps aside.

Precedence with other authenticators
------------------------------------
- Only ``Bearer`` credentials that start with ``k_live_`` are ours. Anything else (no
  header, ``Basic``, a ``Bearer`` OAuth access token of the Management API) returns ``None``
  without touching the database, so the next class in ``authentication_classes`` runs.
- A credential with our prefix is ours whether or not it verifies: a bad one ends
  authentication with a 401 right here and is never offered to a later class, so a revoked
  or expired key cannot be retried against a weaker scheme.
- List this class **first**. DRF builds the ``WWW-Authenticate`` header of every 401 from
  the *first* class only: first, clients learn ``error="invalid_token"``; after a class
  without a header (``SessionAuthentication``), DRF turns 401s into 403s. It is also the
  cheapest first guess: a prefix check, where django-oauth-toolkit's
  ``OAuth2Authentication`` would first look every API key up as an access token.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, NoReturn

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from apikeys import conf, crypto, services
from apikeys.http import client_ip
from apikeys.ratelimit import record_failure
from apikeys.services import Verification

logger = logging.getLogger(__name__)

#: Kinde's wording for every refused key; the ``code`` says why.
INVALID_API_KEY_MESSAGE = "Invalid API key"
#: Code of the 401 when a view needs an API key and the request carries none.
API_KEY_MISSING = "API_KEY_MISSING"
#: Code of the 429 past the failure limit (the verify endpoint's code for the same limit).
RATE_LIMITED = "RATE_LIMITED"

_KEY_PREFIX = crypto.KEY_PREFIX.encode("ascii")


def error_body(code: str, message: str) -> dict[str, list[dict[str, str]]]:
    """The contract's error body: ``{"errors": [{"code": …, "message": …}]}``."""
    return {"errors": [{"code": code, "message": message}]}


class ApiKeyAuthenticationFailed(exceptions.AuthenticationFailed):
    """401: the request presented one of our keys and it did not verify.

    ``detail`` already is the contract's body, so DRF's default exception handler answers
    it as is; ``error_code`` is the code alone, for handlers that build their own body.
    """

    def __init__(self, code: str) -> None:
        super().__init__(detail=error_body(code, INVALID_API_KEY_MESSAGE), code=code)
        self.error_code = code


class ApiKeyFailuresLimited(exceptions.Throttled):
    """429: this client IP presented too many keys that did not verify; ``wait`` seconds
    until its window resets."""

    def __init__(self, wait: int) -> None:
        # Not Throttled.__init__, which appends a sentence to a text detail: the detail here
        # is the contract's body, answered as is by DRF's default exception handler.
        exceptions.APIException.__init__(
            self,
            detail=error_body(RATE_LIMITED, "Too many failed attempts; try again later."),
            code=RATE_LIMITED,
        )
        self.wait = wait
        self.error_code = RATE_LIMITED


class ApiKeyLimitReached(exceptions.Throttled):
    """429: a valid key refused by its own usage limits: ``API_KEY_RATE_LIMITED`` (``wait``
    seconds until its window lets one more through) or ``API_KEY_USAGE_EXCEEDED`` (no
    credits left until its refill)."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "API_KEY_RATE_LIMITED": "This API key's rate limit is reached; try again later.",
        "API_KEY_USAGE_EXCEEDED": "This API key has no credits left.",
    }

    def __init__(self, code: str, wait: int | None) -> None:
        exceptions.APIException.__init__(
            self, detail=error_body(code, self.MESSAGES[code]), code=code
        )
        self.wait = wait
        self.error_code = code


class ApiKeyMissing(exceptions.NotAuthenticated):
    """401: the view needs an API key and the request presented no credentials at all."""

    def __init__(self) -> None:
        super().__init__(
            detail=error_body(API_KEY_MISSING, INVALID_API_KEY_MESSAGE), code=API_KEY_MISSING
        )
        self.error_code = API_KEY_MISSING


@dataclass(frozen=True)
class OrganizationPrincipal:
    """``request.user`` for an organization-level key: authenticated, but not a person.

    Why not ``AnonymousUser``: ``IsAuthenticated`` and every ``is_authenticated`` test would
    then refuse a perfectly valid key. Why not a ``User`` row: an organization has none.
    It grants no Django permission; ``pk`` is the organization code, so that per-user
    throttles count per organization, and a query such as ``filter(owner=request.user)``
    fails loudly instead of matching someone.
    """

    org_code: str
    key_id: str

    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False
    is_active: ClassVar[bool] = True
    is_staff: ClassVar[bool] = False
    is_superuser: ClassVar[bool] = False

    @property
    def pk(self) -> str:
        return self.org_code

    def __str__(self) -> str:
        return self.org_code

    def get_username(self) -> str:
        return self.org_code

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False


def _active_user(public_id: str | None) -> Any:
    """The active user with this public id, else an anonymous user (never authenticated)."""
    user = get_user_model()._default_manager.filter(public_id=public_id, is_active=True).first()
    return user if user is not None else AnonymousUser()


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate ``Authorization: Bearer k_live_…`` through ``api_key_verify``.

    Extension points: ``www_authenticate_realm``; :meth:`get_audience` (by default the
    view's ``api_key_audience`` attribute); :meth:`get_principal` (what ``request.user``
    becomes). See the module docstring for precedence with other classes.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Any, Verification] | None:
        key = self._presented_key(request)
        if key is None:
            return None
        verification = services.api_key_verify(
            key=key, audience=self.get_audience(request), ip=client_ip(request)
        )
        if verification.code in (Verification.RATE_LIMITED, Verification.USAGE_EXCEEDED):
            # A good key over its own limits: not a guess, so no failure is recorded.
            self._limited(verification, request)
        if not verification.is_valid:
            self._refuse(verification.code, verification.key_id, request)
        return self.get_principal(verification, request), verification

    def authenticate_header(self, request: Request) -> str:
        # Called by DRF for every 401 of the view. A request that presented one of our keys
        # and still got a 401 presented a bad key (a good one would have authenticated).
        challenge = f'Bearer realm="{self.www_authenticate_realm}"'
        if self._bearer_credentials(request) is not None:
            challenge += ', error="invalid_token"'
        return challenge

    def get_audience(self, request: Request) -> str | None:
        """The audience keys must have been issued for: the view's ``api_key_audience``,
        or ``None`` to accept a key of any API."""
        view = request.parser_context.get("view") if request.parser_context else None
        return getattr(view, "api_key_audience", None)

    def get_principal(self, verification: Verification, request: Request) -> Any:
        """What ``request.user`` becomes for a verified key."""
        if verification.user_id is None:
            return OrganizationPrincipal(
                org_code=verification.org_code or "", key_id=verification.key_id or ""
            )
        if verification.owner_active is False:
            self._refuse(Verification.INVALID, verification.key_id, request)
        if verification.owner_active:
            # Known active from the key cache (kept exact by user_update): read the user only
            # if the view asks for it.
            return SimpleLazyObject(partial(_active_user, verification.user_id))
        user = _active_user(verification.user_id)
        if not user.is_authenticated:
            self._refuse(Verification.INVALID, verification.key_id, request)
        return user

    def _limited(self, verification: Verification, request: Request) -> NoReturn:
        """429 for a key refused by its rate limit (``Retry-After``: until the window lets
        the next verification through) or for lack of credits."""
        logger.info("API key refused: %s (key %s)", verification.code, verification.key_id)
        reset = (verification.ratelimit or {}).get("reset")
        wait = None
        if isinstance(reset, datetime):
            wait = max(1, math.ceil((reset - timezone.now()).total_seconds()))
            view = request.parser_context.get("view") if request.parser_context else None
            if view is not None and isinstance(getattr(view, "headers", None), dict):
                view.headers.update({"Retry-After": str(wait), "RateLimit-Reset": str(wait)})
        raise ApiKeyLimitReached(verification.code, wait)

    def _refuse(self, code: str, key_id: str | None, request: Request) -> NoReturn:
        # The key id is not a secret (the Management API lists it); the key itself is never
        # logged, not even its displayable prefix.
        ip = client_ip(request)
        logger.info("API key refused: %s (key %s, ip %s)", code, key_id or "unknown", ip)
        retry_after = record_failure(
            f"apikey-auth:{ip or 'unknown'}",
            limit=conf.get("AUTHENTICATION_FAILURE_LIMIT"),
            window=conf.get("AUTHENTICATION_FAILURE_WINDOW"),
        )
        if retry_after is not None:
            # DRF's default handler sends Retry-After from ``wait`` but no RateLimit-Reset;
            # the view's ``headers`` are added to every response it finalizes, whichever
            # exception handler built it.
            view = request.parser_context.get("view") if request.parser_context else None
            if view is not None and isinstance(getattr(view, "headers", None), dict):
                view.headers.update(
                    {"Retry-After": str(retry_after), "RateLimit-Reset": str(retry_after)}
                )
            raise ApiKeyFailuresLimited(retry_after)
        raise ApiKeyAuthenticationFailed(code)

    def _bearer_credentials(self, request: Request) -> list[bytes] | None:
        """The words after ``Bearer`` when the first one has our prefix, else ``None``."""
        words = get_authorization_header(request).split()
        if len(words) < 2 or words[0].lower() != b"bearer":
            return None
        if not words[1].startswith(_KEY_PREFIX):
            return None
        return words[1:]

    def _presented_key(self, request: Request) -> str | None:
        credentials = self._bearer_credentials(request)
        if credentials is None:
            return None
        if len(credentials) != 1:
            # "Bearer k_live_… something": ours, and malformed.
            self._refuse(Verification.INVALID, None, request)
        try:
            return credentials[0].decode("ascii")
        except UnicodeDecodeError:
            self._refuse(Verification.INVALID, None, request)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """How drf-spectacular documents views using :class:`ApiKeyAuthentication` (a platform's
    OpenAPI document then shows "Bearer API key" instead of warning about an unknown class)."""

    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"
    match_subclasses = True

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key issued by this service: `Authorization: Bearer k_live_…`.",
        }
