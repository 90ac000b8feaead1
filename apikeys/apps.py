"""App configuration for ``apikeys``."""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ApiKeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete
        from oauth2_provider.models import get_access_token_model

        from apikeys import checks, keycache, signin, tokencache  # noqa: F401  (checks, receivers)
        from apikeys.models import ApiKeyQuerySet

        # A deleted token, however it is deleted, is refused at once by every worker's cache.
        post_delete.connect(
            tokencache.forget_deleted_token,
            sender=get_access_token_model(),
            dispatch_uid="apikeys.tokencache.forget_deleted_token",
        )
        # Keys read anywhere carry the verifications counted in Redis and not yet written back.
        ApiKeyQuerySet.live_counts = keycache.merge_counts
        _drop_task_results_admin()


def _drop_task_results_admin() -> None:
    """django-tasks-db registers an admin of its task rows, without this admin's guards
    against tampered input; they are the worker's bookkeeping (webhook deliveries have their
    own admin), so it is taken out. The admin's ``ready`` has already discovered it."""
    from django.apps import apps

    if not (apps.is_installed("django.contrib.admin") and apps.is_installed("django_tasks_db")):
        return
    from django.contrib import admin
    from django_tasks_db.models import DBTaskResult

    if admin.site.is_registered(DBTaskResult):
        admin.site.unregister(DBTaskResult)


class AdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with :class:`apikeys.admin_site.PortalSafeAdminSite` as its
    site: list it in ``INSTALLED_APPS`` in place of ``"django.contrib.admin"``."""

    default = False  # not the default config of this module: that is ApiKeysConfig
    default_site = "apikeys.admin_site.PortalSafeAdminSite"
