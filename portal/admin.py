"""The portal in the admin: the self-serve switches (editable, audited) and the portal links
(read-only: they are made through the Management API and used by customers)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from apikeys.admin.common import QuietMissingObjectMixin, ReadOnlyAdminMixin
from apikeys.http import client_ip
from apikeys.services import Actor
from portal import services
from portal.models import PortalLink, SelfServeSettings


@admin.register(SelfServeSettings)
class SelfServeSettingsAdmin(QuietMissingObjectMixin, admin.ModelAdmin):
    """One row: the list page goes straight to it; saving goes through the service, which
    records who changed what in the audit trail."""

    fields = [
        "user_keys_enabled",
        "organization_keys_enabled",
        "portal_link_lifetime_seconds",
        "updated_on",
    ]
    readonly_fields = ["updated_on"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        row = SelfServeSettings.load()
        return HttpResponseRedirect(reverse("admin:portal_selfservesettings_change", args=[row.pk]))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # A fresh install has no row until something reads the switches: make it here too,
        # so the change page never says "doesn't exist".
        SelfServeSettings.load()
        return super().get_object(request, object_id, from_field)

    def save_model(
        self, request: HttpRequest, obj: SelfServeSettings, form: Any, change: bool
    ) -> None:
        services.self_serve_settings_update(
            user_keys_enabled=obj.user_keys_enabled,
            organization_keys_enabled=obj.organization_keys_enabled,
            portal_link_lifetime_seconds=obj.portal_link_lifetime_seconds,
            actor=Actor(user=request.user, ip=client_ip(request)),
        )

    def response_change(self, request: HttpRequest, obj: SelfServeSettings) -> HttpResponse:
        # "Save" would go to the list page, which only redirects back here.
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            self.message_user(request, "The self-serve settings were saved.")
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


@admin.register(PortalLink)
class PortalLinkAdmin(ReadOnlyAdminMixin, QuietMissingObjectMixin, admin.ModelAdmin):
    """Who was sent a portal link, when, and whether it was used. Never the digest."""

    list_display = [
        "id",
        "user",
        "organization",
        "sub_nav",
        "created_on",
        "expires_at",
        "used_at",
        "state",
    ]
    list_filter = ["sub_nav", ("used_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email", "user__public_id", "organization__code", "organization__name"]
    list_select_related = ["user", "organization"]
    fields = (
        "user",
        "organization",
        "sub_nav",
        "return_url",
        "created_by",
        "created_on",
        "expires_at",
        "used_at",
        "state",
    )
    readonly_fields = fields
    date_hierarchy = "created_on"

    @admin.display(description="state")
    def state(self, obj: PortalLink) -> str:
        return obj.state
