"""URLs of the project: a front page, the admin, the Management API, the OAuth token endpoint
and the portal."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apikeys.api.token import ManagementTokenView
from project.views import HomeView

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("admin/", admin.site.urls),
    path("oauth2/token", ManagementTokenView.as_view(), name="oauth2-token"),
    path("api/v1/", include("apikeys.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("portal/", include("portal.urls")),
    path("example/", include("project.example")),
]
