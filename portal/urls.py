"""URLs of the self-serve portal (namespace ``portal``), mounted at /portal/."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from portal import views

app_name = "portal"

urlpatterns: list[URLPattern] = [
    path("", views.HomeView.as_view(), name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("link/<str:token>/", views.PortalLinkView.as_view(), name="link"),
    path("keys/", views.ApiKeyListView.as_view(), name="user-keys"),
    path("keys/new/", views.ApiKeyCreateView.as_view(), name="user-key-create"),
    path("keys/<str:key_id>/", views.ApiKeyDetailView.as_view(), name="apikey-detail"),
    path("keys/<str:key_id>/rotate/", views.ApiKeyRotateView.as_view(), name="apikey-rotate"),
    path("keys/<str:key_id>/revoke/", views.ApiKeyRevokeView.as_view(), name="apikey-revoke"),
    path("orgs/<str:org_code>/keys/", views.ApiKeyListView.as_view(), name="org-keys"),
    path(
        "orgs/<str:org_code>/keys/new/",
        views.ApiKeyCreateView.as_view(),
        name="org-key-create",
    ),
    re_path(r"^.*$", views.PortalNotFoundView.as_view(), name="not-found"),
]
