"""URLs of the project: admin, Management API, OAuth token endpoint and the portal."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
]
