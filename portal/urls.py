"""URLs of the self-serve portal (namespace ``portal``), mounted at /portal/."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path, register_converter

from portal import views


class PublicIdConverter:
    """Key ids, organization codes and link tokens: letters, digits, ``_`` and ``-``.

    Anything else in those places (a NUL, which PostgreSQL refuses in text, a slash, a
    space) cannot name anything: the URL does not match and falls through to the portal's
    404 page, before any view or query runs.
    """

    regex = r"[A-Za-z0-9_-]{1,128}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PublicIdConverter, "public_id")

app_name = "portal"

urlpatterns: list[URLPattern] = [
    path("", views.HomeView.as_view(), name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("link/<public_id:token>/", views.PortalLinkView.as_view(), name="link"),
    path("keys/", views.ApiKeyListView.as_view(), name="user-keys"),
    path("keys/new/", views.ApiKeyCreateView.as_view(), name="user-key-create"),
    path("keys/<public_id:key_id>/", views.ApiKeyDetailView.as_view(), name="apikey-detail"),
    path("keys/<public_id:key_id>/rotate/", views.ApiKeyRotateView.as_view(), name="apikey-rotate"),
    path("keys/<public_id:key_id>/revoke/", views.ApiKeyRevokeView.as_view(), name="apikey-revoke"),
    path("keys/<public_id:key_id>/limits/", views.ApiKeyLimitsView.as_view(), name="apikey-limits"),
    path("orgs/<public_id:org_code>/keys/", views.ApiKeyListView.as_view(), name="org-keys"),
    path(
        "orgs/<public_id:org_code>/keys/new/",
        views.ApiKeyCreateView.as_view(),
        name="org-key-create",
    ),
    re_path(r"^.*$", views.PortalNotFoundView.as_view(), name="not-found"),
]
