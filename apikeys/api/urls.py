"""Routes of the Management API under ``/api/v1/`` (include with namespace ``apikeys-api``)."""

from __future__ import annotations

from django.urls import path, re_path

from apikeys.api import views

app_name = "apikeys-api"

urlpatterns = [
    path("api_keys", views.ApiKeysApi.as_view(), name="api-keys"),
    path("api_keys/verify", views.ApiKeyVerifyApi.as_view(), name="api-key-verify"),
    # Before api_keys/<key_id>, which would otherwise take "leaks" for a key id.
    path("api_keys/leaks", views.ApiKeyLeaksApi.as_view(), name="api-key-leaks"),
    path("api_keys/<str:key_id>", views.ApiKeyApi.as_view(), name="api-key"),
    path("api_keys/<str:key_id>/usage", views.ApiKeyUsageApi.as_view(), name="api-key-usage"),
    path("apis", views.ApisApi.as_view(), name="apis"),
    path("apis/<str:api_id>", views.ApiApi.as_view(), name="api"),
    path("apis/<str:api_id>/scopes", views.ApiScopesApi.as_view(), name="api-scopes"),
    path("apis/<str:api_id>/scopes/<str:scope_id>", views.ApiScopeApi.as_view(), name="api-scope"),
    path("organization", views.OrganizationApi.as_view(), name="organization"),
    path(
        "organization/<str:org_code>",
        views.OrganizationUpdateApi.as_view(),
        name="organization-update",
    ),
    path("organizations", views.OrganizationsApi.as_view(), name="organizations"),
    path(
        "organizations/<str:org_code>/users",
        views.OrganizationUsersApi.as_view(),
        name="organization-users",
    ),
    path(
        "organizations/<str:org_code>/api_key_policy",
        views.OrganizationKeyPolicyApi.as_view(),
        name="organization-api-key-policy",
    ),
    path("user", views.UserApi.as_view(), name="user"),
    path("users", views.UsersApi.as_view(), name="users"),
    path("roles", views.RolesApi.as_view(), name="roles"),
    path(
        "roles/<str:role_id>/system_permissions",
        views.RolePermissionsApi.as_view(),
        name="role-permissions",
    ),
    path("system_permissions", views.SystemPermissionsApi.as_view(), name="system-permissions"),
    path("portal/generate_url", views.PortalLinkApi.as_view(), name="portal-generate-url"),
    path(
        "secret_scanning/github",
        views.GitHubSecretScanningApi.as_view(),
        name="secret-scanning-github",
    ),
    path("webhooks", views.WebhooksApi.as_view(), name="webhooks"),
    path("webhooks/<str:webhook_id>", views.WebhookApi.as_view(), name="webhook"),
    path(
        "webhooks/<str:webhook_id>/deliveries",
        views.WebhookDeliveriesApi.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/retry",
        views.WebhookDeliveryRetryApi.as_view(),
        name="webhook-delivery-retry",
    ),
    re_path(r"^.*$", views.route_not_found, name="route-not-found"),
]
