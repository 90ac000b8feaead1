"""App configuration for ``apikeys``."""

from __future__ import annotations

from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apikeys import checks  # noqa: F401  (registers the system checks)
