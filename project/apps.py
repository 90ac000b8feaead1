"""App configurations of this project."""

from __future__ import annotations

from apikeys.apps import AdminConfig


class PlatformAdminConfig(AdminConfig):
    default_site = "project.admin.PlatformAdminSite"
