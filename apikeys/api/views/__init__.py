"""Management API views, one module per aggregate; each module's docstring states its rules.

- ``_common``: envelopes and error responses of the OpenAPI document, ``validated``, query
  filters, lookups of ids in the path (404) and the body (400), ``secret_response``.
- ``api_keys``: list, issue, read, rotate, revoke and verify keys.
- ``apis``: APIs and their scopes.
- ``organizations``: organizations and their members.
- ``users``: users.
- ``roles``: roles and system permissions.
- ``portal_links``: one-time portal sign-in URLs (the only view that uses ``portal``).
- ``webhooks``: webhooks and their deliveries.
- ``fallbacks``: the JSON 404 of unknown routes.

Every handler reads: validate (a strict serializer) → service → serialize.
"""

from __future__ import annotations

from apikeys.api.views._common import IGNORED_PREFIX
from apikeys.api.views.api_keys import ApiKeyApi, ApiKeysApi, ApiKeyUsageApi, ApiKeyVerifyApi
from apikeys.api.views.apis import ApiApi, ApisApi, ApiScopeApi, ApiScopesApi
from apikeys.api.views.fallbacks import route_not_found
from apikeys.api.views.leaks import ApiKeyLeaksApi, GitHubSecretScanningApi
from apikeys.api.views.organizations import (
    OrganizationApi,
    OrganizationKeyPolicyApi,
    OrganizationsApi,
    OrganizationUpdateApi,
    OrganizationUsersApi,
)
from apikeys.api.views.portal_links import PortalLinkApi
from apikeys.api.views.roles import RolePermissionsApi, RolesApi, SystemPermissionsApi
from apikeys.api.views.users import UserApi, UsersApi
from apikeys.api.views.webhooks import (
    WebhookApi,
    WebhookDeliveriesApi,
    WebhookDeliveryRetryApi,
    WebhooksApi,
)

__all__ = [
    "IGNORED_PREFIX",
    "ApiApi",
    "ApiKeyApi",
    "ApiKeyLeaksApi",
    "ApiKeyUsageApi",
    "ApiKeyVerifyApi",
    "ApiKeysApi",
    "ApiScopeApi",
    "ApiScopesApi",
    "ApisApi",
    "GitHubSecretScanningApi",
    "OrganizationApi",
    "OrganizationKeyPolicyApi",
    "OrganizationUpdateApi",
    "OrganizationUsersApi",
    "OrganizationsApi",
    "PortalLinkApi",
    "RolePermissionsApi",
    "RolesApi",
    "SystemPermissionsApi",
    "UserApi",
    "UsersApi",
    "WebhookApi",
    "WebhookDeliveriesApi",
    "WebhookDeliveryRetryApi",
    "WebhooksApi",
    "route_not_found",
]
