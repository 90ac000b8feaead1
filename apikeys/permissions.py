"""DRF permission requiring API-key scopes: ``HasScopes("read:users")``.

Two ways to declare what a view needs; a key must carry *every* listed scope::

    class UserListApi(APIView):
        authentication_classes = [ApiKeyAuthentication]
        permission_classes = [HasScopes("read:users")]

    class OrderListApi(APIView):
        authentication_classes = [ApiKeyAuthentication]
        permission_classes = [HasRequiredScopes]
        required_scopes = ["read:orders"]

``HasScopes(...)`` makes a permission *class* (a subclass of :class:`HasRequiredScopes`), so
it fits ``permission_classes`` for DRF and for type checkers alike, and composes with DRF's
operators: ``IsAuthenticated & HasScopes("a")``, ``HasScopes("a") | HasScopes("b")``.
(``required_scopes`` is also the attribute django-oauth-toolkit's ``TokenHasScope`` reads, so
a view can state its scopes once for either kind of credential.)

Answers:
- no credentials at all: 401 ``API_KEY_MISSING`` (message "Invalid API key", as Kinde's
  quick start), with the ``WWW-Authenticate`` challenge of the first authentication class;
- authenticated some other way (a session, an OAuth token) but without an API key: 403
  ``API_KEY_REQUIRED``;
- a key without a required scope: 403 ``INSUFFICIENT_SCOPE``, the message naming every
  missing scope.

A missing scope answers ``False`` rather than raising, so ``|`` can try the other side (the
coded body is then DRF's generic 403, which knows nothing of either side). The one exception
is a request with no credentials at all, refused at once with the 401 above: do not combine
these classes with permissions meant to admit anonymous callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apikeys.authentication import ApiKeyMissing, error_body
from apikeys.services import Verification

INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
API_KEY_REQUIRED = "API_KEY_REQUIRED"


class HasRequiredScopes(BasePermission):
    """Require an API key carrying every scope of ``scopes`` (set by :func:`HasScopes`), or
    else of the view's ``required_scopes``.

    DRF makes a new instance per request, so the ``message`` and ``code`` set while
    refusing (and read by DRF to build the 403) are never shared between threads.
    """

    scopes: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.message: Any = None
        self.code: str | None = None

    def get_required_scopes(self, view: Any) -> tuple[str, ...]:
        """This class's ``scopes``, else the view's ``required_scopes``."""
        if self.scopes:
            return self.scopes
        declared = getattr(view, "required_scopes", None)
        if declared is None:
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses HasRequiredScopes without required_scopes: set "
                'required_scopes = ["read:users"] on the view, or use HasScopes("read:users").'
            )
        return _checked(declared, where=f"{type(view).__name__}.required_scopes")

    def has_permission(self, request: Request, view: Any) -> bool:
        required = self.get_required_scopes(view)
        verification = request.auth if isinstance(request.auth, Verification) else None
        if verification is None:
            if request.successful_authenticator is None:
                raise ApiKeyMissing()
            self.code = API_KEY_REQUIRED
            self.message = error_body(API_KEY_REQUIRED, "This endpoint needs an API key.")
            return False
        missing = [scope for scope in required if scope not in verification.scopes]
        if missing:
            # The scope names come from the view's code, never from the request: safe to echo.
            self.code = INSUFFICIENT_SCOPE
            self.message = error_body(
                INSUFFICIENT_SCOPE, f"Insufficient scope: this API key needs {', '.join(missing)}."
            )
            return False
        return True


# CamelCase on purpose: HasScopes("read:users") reads as, and is, a permission class.
def HasScopes(*scopes: str) -> type[HasRequiredScopes]:
    """A permission class requiring an API key that carries every one of ``scopes``.

    Bad names (none, empty, padded with spaces, not strings) are refused here, when the view
    is defined, rather than on its first request.
    """
    checked = _checked(scopes, where="HasScopes(...)")
    name = f"HasScopes({', '.join(checked)})"
    return type(
        name,
        (HasRequiredScopes,),
        {"scopes": checked, "__module__": __name__, "__qualname__": name, "__doc__": None},
    )


def _checked(scopes: Iterable[str] | str, *, where: str) -> tuple[str, ...]:
    # A bare string would be read as its characters ("read:users" -> "r", "e", ...), which
    # would demand nonsense scopes; refuse it, and refuse empty or blank names, at once.
    if isinstance(scopes, str):
        raise ImproperlyConfigured(f"{where} must be a list of scope names, not a string.")
    checked = tuple(scopes)
    if not checked or any(not isinstance(s, str) or not s or s != s.strip() for s in checked):
        raise ImproperlyConfigured(f"{where} needs one or more non-blank scope names.")
    return checked
