"""Admin of API keys: the list and the read-only detail page.

The list filters live in ``keys_filters``, the issue/rotate/revoke views and list actions
(and the page showing a secret once) in ``keys_writes``; :class:`ApiKeyAdmin` puts them
together and is the one registered.

- The list shows name, owner, API, status, prefix…suffix, dates and the verification count,
  from one query for the page (``list_select_related``), however many keys there are.
- The detail page is read-only: a key's secret material is never shown, not even its
  digest; nothing about a key is edited, only rotated or revoked.
- "Add API key" (from the key list, an organization's page or a user's page) issues a key
  through ``services.api_key_issue`` and shows its secret once.
- Rotate (with an optional grace period) shows the new secret once; revoke asks for
  confirmation. Both are on the detail page and are list actions.
- Keys are never deleted.
- The detail page ends with the key's last 30 days of verifications (valid vs refused per
  UTC day) as a chart and a table, drawn by the same template tag as the portal's.

Permissions: ``view_apikey`` to see keys, ``add_apikey`` to issue, ``change_apikey`` to
rotate and revoke. Nobody, not even a superuser, may delete a key here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apikeys import limits
from apikeys.admin.keys_filters import ApiFilter, OwnerFilter, OwnerTypeFilter, StatusFilter
from apikeys.admin.keys_writes import ApiKeyWriteViews
from apikeys.models import ApiKey
from apikeys.selectors import api_key_usage_daily


def _short_time(value: datetime | None) -> str | None:
    """A time as the list shows it: compact (``2026-05-04 13:07``), exact on hover."""
    if value is None:
        return None
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.isoformat(sep=" ", timespec="seconds"),
        local.strftime("%Y-%m-%d %H:%M"),
    )


@admin.register(ApiKey)
class ApiKeyAdmin(ApiKeyWriteViews):
    list_display = (
        "name",
        "owner",
        "api_name",
        "status_badge",
        "key_display",
        "created",
        "last_verified",
        "verifications",
    )
    list_filter = (
        StatusFilter,
        ("api", ApiFilter),
        OwnerTypeFilter,
        OwnerFilter,
    )
    search_fields = ("name", "=id", "^key_prefix", "=org_code", "=user_public_id")
    search_help_text = (
        "Name, key id (api_key_…), key prefix (k_live_…), organization code (org_…) or "
        "user id (kp_…)."
    )
    list_select_related = ("organization", "user", "api")
    # Counting a large table twice per page (filtered and unfiltered) is wasted work.
    show_full_result_count = False
    actions = ["rotate_selected", "revoke_selected"]
    add_form_template = "admin/apikeys/apikey/issue_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "name",
                    "status_badge",
                    "owner",
                    "api_name",
                    "scopes_display",
                    "key_display",
                    "expires_at",
                ]
            },
        ),
        (
            "History",
            {
                "fields": [
                    "created_on",
                    "created_by",
                    "rotated_on",
                    "previous_secret_until",
                    "revoked_on",
                ]
            },
        ),
        (
            "Usage",
            {
                "fields": [
                    "last_verified_on",
                    "last_verified_ip",
                    "verification_count",
                    "ratelimit_display",
                    "credits_display",
                    "audit_trail",
                ]
            },
        ),
    ]
    # Everything is read-only: the digests are not even among the fields.
    readonly_fields = [
        name for _, options in fieldsets for name in options["fields"] if isinstance(name, str)
    ]

    class Media:
        css = {"all": ["apikeys/usage.css"]}

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ApiKey | None = None,
    ) -> Any:
        # Called with the key only once Django has found it and checked view permission.
        if obj is not None:
            context["usage"] = api_key_usage_daily(api_key_ids=[obj.pk])[obj.pk]
        return super().render_change_form(request, context, add, change, form_url, obj)

    # ------------------------------------------------------------------ permissions

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).select_related("organization", "user", "api")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # No field of a key is edited here: the detail page is read-only for everyone.
        # Rotating and revoking need the model's "change" permission (below).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Keys are never hard-deleted: revoke them; the row keeps their history.
        return False

    # ------------------------------------------------------------------ columns

    @admin.display(description="owner")
    def owner(self, obj: ApiKey) -> str:
        organization, user = obj.organization, obj.user
        if organization is not None:
            url = reverse("admin:apikeys_organization_change", args=[quote(organization.pk)])
            return format_html(
                '<a href="{}">{}</a><br><span class="apikeys-code">{}</span>',
                url,
                organization.name,
                obj.org_code,
            )
        if user is not None:
            url = reverse("admin:apikeys_user_change", args=[quote(user.pk)])
            return format_html(
                '<a href="{}">{}</a><br><span class="apikeys-code">{}</span>',
                url,
                user,
                obj.user_public_id,
            )
        # The owner was deleted: the key is revoked and kept, with the owner's code.
        return format_html(
            'deleted {}<br><span class="apikeys-code">{}</span>', obj.type, obj.owner_code
        )

    @admin.display(description="API", ordering="api__name")
    def api_name(self, obj: ApiKey) -> str:
        if obj.api is None:
            # The API was deleted; the key keeps the id it was issued for.
            return format_html('<span class="apikeys-code">{}</span> (deleted)', obj.api_public_id)
        return obj.api.name

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ApiKey) -> str:
        status = obj.effective_status
        return format_html(
            '<span class="apikeys-status apikeys-status-{}">{}</span>', status, status
        )

    @admin.display(description="key")
    def key_display(self, obj: ApiKey) -> str:
        return format_html(
            '<code class="apikeys-code">{}…{}</code>', obj.key_prefix, obj.key_suffix
        )

    # Short column headings: the list has many columns to fit.
    @admin.display(description="created", ordering="created_on")
    def created(self, obj: ApiKey) -> str | None:
        return _short_time(obj.created_on)

    @admin.display(description="last verified", ordering="last_verified_on")
    def last_verified(self, obj: ApiKey) -> str | None:
        return _short_time(obj.last_verified_on)

    @admin.display(description="verifications", ordering="verification_count")
    def verifications(self, obj: ApiKey) -> int:
        return obj.verification_count

    @admin.display(description="scopes")
    def scopes_display(self, obj: ApiKey) -> str:
        return " ".join(obj.scope_list) or "—"

    @admin.display(description="previous secret valid until")
    def previous_secret_until(self, obj: ApiKey) -> Any:
        if obj.previous_expires_at and obj.previous_expires_at > timezone.now():
            return obj.previous_expires_at
        # A read-only callable's None would be printed as "None", not as the empty mark.
        return self.get_empty_value_display()

    @admin.display(description="Rate limit")
    def ratelimit_display(self, obj: ApiKey) -> str:
        if obj.ratelimit_limit is None:
            return "No limit"
        plural = "" if obj.ratelimit_limit == 1 else "s"
        return f"{obj.ratelimit_limit} verification{plural} in any {obj.ratelimit_duration} s"

    @admin.display(description="Credits")
    def credits_display(self, obj: ApiKey) -> str:
        remaining = limits.credits_now(
            obj.credits_remaining,
            obj.credits_refill_interval,
            obj.credits_refill_amount,
            obj.credits_period,
            timezone.now(),
        )
        if remaining is None:
            return "No limit"
        refill = (
            f", refilled {obj.credits_refill_interval} to {obj.credits_refill_amount}"
            if obj.credits_refill_interval
            else ""
        )
        return f"{remaining} left{refill}"

    @admin.display(description="audit trail")
    def audit_trail(self, obj: ApiKey) -> str:
        url = reverse("admin:apikeys_auditevent_changelist")
        return format_html('<a href="{}?q={}">Changes to this key</a>', url, obj.id)
