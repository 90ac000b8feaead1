"""Admin of the audit trail: read-only, filterable by actor, action, organization and date.

Nobody adds, changes or deletes an event here (the model refuses updates and deletes too).
The list reads only the event table (the actor's label and the organization's code are
copied onto each event), so it stays one query per page however long the trail grows.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apikeys.admin.common import InputFilter, QuietMissingObjectMixin, ReadOnlyAdminMixin
from apikeys.models import AuditEvent


class OrganizationCodeFilter(InputFilter):
    title = "organization (org_…)"
    parameter_name = "org_code"

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent]
    ) -> QuerySet[AuditEvent]:
        value = (self.value() or "").strip()
        return queryset.filter(org_code=value) if value else queryset


class ActorFilter(InputFilter):
    title = "actor (name, email or app)"
    parameter_name = "actor"

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent]
    ) -> QuerySet[AuditEvent]:
        value = (self.value() or "").strip()
        return queryset.filter(actor_label__icontains=value) if value else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, QuietMissingObjectMixin, admin.ModelAdmin):
    list_display = ("occurred_on", "actor", "action", "target", "org_code", "ip")
    list_filter = (
        "actor_type",
        "action",
        ActorFilter,
        OrganizationCodeFilter,
        ("occurred_on", admin.DateFieldListFilter),
    )
    search_fields = ("=target_id", "=org_code", "=user_public_id", "actor_label")
    search_help_text = (
        "Exact target id (api_key_…, org_…, kp_…), organization code, user id, or actor."
    )
    show_full_result_count = False
    actions = None
    fields = (
        "occurred_on",
        "action",
        "actor_type",
        "actor_label",
        "target_type",
        "target_id",
        "org_code",
        "user_public_id",
        "ip",
        "details_json",
    )
    readonly_fields = fields

    @admin.display(description="actor", ordering="actor_label")
    def actor(self, obj: AuditEvent) -> str:
        return format_html(
            '{}<br><span class="apikeys-code">{}</span>',
            obj.actor_label,
            obj.get_actor_type_display(),
        )

    @admin.display(description="target", ordering="target_id")
    def target(self, obj: AuditEvent) -> str:
        return format_html(
            '<span class="apikeys-code">{}</span><br>{}', obj.target_id, obj.target_type
        )

    @admin.display(description="details")
    def details_json(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True))
