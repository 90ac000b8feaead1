"""App configuration for ``apikeys``."""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ApiKeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apikeys import checks, keycache, signin  # noqa: F401  (checks and receivers)
        from apikeys.models import ApiKeyQuerySet

        ApiKeyQuerySet.live_counts = keycache.merge_counts


class AdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with :class:`apikeys.admin_site.PortalSafeAdminSite` as its
    site: list it in ``INSTALLED_APPS`` in place of ``"django.contrib.admin"``."""

    default = False  # not the default config of this module: that is ApiKeysConfig
    default_site = "apikeys.admin_site.PortalSafeAdminSite"
