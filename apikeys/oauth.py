"""django-oauth-toolkit integration: an application's tokens carry only its granted scopes."""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

from apikeys.models import MANAGEMENT_SCOPES, M2MGrant


def granted_scopes(application: Any) -> list[str]:
    """The Management API scopes granted to ``application`` (none without a grant)."""
    if application is None:
        return []
    try:
        grant = application.m2m_grant
    except M2MGrant.DoesNotExist:
        return []
    return [s for s in grant.scope_list if s in MANAGEMENT_SCOPES]


class GrantedScopes(BaseScopes):
    """Scopes backend: every scope is one of ``MANAGEMENT_SCOPES``; an application may ask
    for any subset of its grant (more is ``invalid_scope``), and gets the whole grant when it
    asks for nothing."""

    def get_all_scopes(self) -> dict[str, str]:
        return dict(MANAGEMENT_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return granted_scopes(application)

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return granted_scopes(application)
