"""Admin of API keys.

- The list shows name, owner, API, status, prefix…suffix, dates and the verification count,
  from one query for the page (``list_select_related``), however many keys there are.
- The detail page is read-only: a key's secret material is never shown, not even its
  digest; nothing about a key is edited, only rotated or revoked.
- "Add API key" (from the key list, an organization's page or a user's page) issues a key
  through ``services.api_key_issue`` and shows its secret once.
- Rotate (with an optional grace period) shows the new secret once; revoke asks for
  confirmation. Both are on the detail page and are list actions.
- Keys are never deleted.

Permissions: ``view_apikey`` to see keys, ``add_apikey`` to issue, ``change_apikey`` to
rotate and revoke. Nobody, not even a superuser, may delete a key here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_variables

from apikeys import services
from apikeys.admin.common import (
    InputFilter,
    ServiceModelAdmin,
    ShownSecret,
    admin_actor,
    change_url,
    render_shown_once,
)
from apikeys.admin.forms import ApiKeyIssueForm, RotateForm
from apikeys.exceptions import ApiKeysError
from apikeys.formtokens import consume_form_token, issue_form_token
from apikeys.models import ApiKey, Organization

User = get_user_model()

# Where the issue form shows an error a service raised about one of its inputs.
ISSUE_FIELD_FOR_ERROR = {"name": "name", "scope_ids": "scopes", "expires_at": "expires_at"}


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


# --------------------------------------------------------------------------- list filters


class ApiFilter(admin.RelatedFieldListFilter):
    """By API, where keys of a deleted API (their ``api`` is gone, their ``api_ids`` kept)
    are one choice named for what they are, not the bare empty-value mark."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.empty_value_display = "Deleted API"


class StatusFilter(admin.SimpleListFilter):
    """The contract's status: ``expired`` is an active key past its expiry time."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        value = self.value()
        if value == "active":
            return queryset.filter(status=ApiKey.Status.ACTIVE).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if value == "expired":
            return queryset.filter(status=ApiKey.Status.ACTIVE, expires_at__lte=now)
        if value == "revoked":
            return queryset.filter(status=ApiKey.Status.REVOKED)
        return queryset


class OwnerTypeFilter(admin.SimpleListFilter):
    title = "owner type"
    parameter_name = "owner_type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(ApiKey.Type.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == ApiKey.Type.ORGANIZATION:
            return queryset.exclude(org_code="")
        if self.value() == ApiKey.Type.USER:
            return queryset.exclude(user_public_id="")
        return queryset


class OwnerFilter(InputFilter):
    """One owner's keys, by organization code or user id (what the owner pages link to)."""

    title = "owner (org_… or kp_…)"
    parameter_name = "owner"

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        # The codes copied onto each key at issue time are indexed with the id: one owner's
        # keys come back in id order from the index, however large the table.
        if value.startswith("kp_"):
            return queryset.filter(user_public_id=value)
        return queryset.filter(org_code=value)


# --------------------------------------------------------------------------- the admin


ALREADY_ISSUED = (
    "This form had already been sent, so no second key was issued. A key's secret is shown "
    "only once; if it was lost, rotate the key."
)
ALREADY_ROTATED = (
    "This form had already been sent, so the key was not rotated again. If the new secret "
    "was lost, rotate the key once more."
)


@admin.register(ApiKey)
class ApiKeyAdmin(ServiceModelAdmin):
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
                    "audit_trail",
                ]
            },
        ),
    ]
    # Everything is read-only: the digests are not even among the fields.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

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

    def has_rotate_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_revoke_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_rotate_permission(request, obj)

    # ------------------------------------------------------------------ columns

    @admin.display(description="owner")
    def owner(self, obj: ApiKey) -> str:
        if obj.owner_deleted:
            return format_html(
                'deleted {}<br><span class="apikeys-code">{}</span>', obj.type, obj.owner_code
            )
        if obj.organization_id:
            url = reverse("admin:apikeys_organization_change", args=[quote(obj.organization_id)])
            return format_html(
                '<a href="{}">{}</a><br><span class="apikeys-code">{}</span>',
                url,
                obj.organization.name,
                obj.org_code,
            )
        url = reverse("admin:apikeys_user_change", args=[quote(obj.user_id)])
        return format_html(
            '<a href="{}">{}</a><br><span class="apikeys-code">{}</span>',
            url,
            obj.user,
            obj.user_public_id,
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

    @admin.display(description="audit trail")
    def audit_trail(self, obj: ApiKey) -> str:
        url = reverse("admin:apikeys_auditevent_changelist")
        return format_html('<a href="{}?q={}">Changes to this key</a>', url, obj.id)

    # ------------------------------------------------------------------ URLs

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/rotate/", wrap(self.rotate_view), name=f"{prefix}_rotate"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name=f"{prefix}_revoke"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_rotate": self.has_rotate_permission(request),
            "can_revoke": self.has_revoke_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # ------------------------------------------------------------------ issue

    @sensitive_variables("issued")
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Issue a key. Replaces Django's generic add form: keys are made only by the
        service, and the response to a successful POST is the page showing the secret."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        form = ApiKeyIssueForm(
            request.POST if posted else None,
            initial=self._owner_initial(request),
            admin_site=self.admin_site,
        )
        if posted and form.is_valid() and self._fresh_submission(request, form, ALREADY_ISSUED):
            data = form.cleaned_data
            try:
                issued = services.api_key_issue(
                    name=data["name"],
                    api=data["api"],
                    scopes=list(data["scopes"]),
                    organization=data["organization"],
                    user=data["user"],
                    expires_at=data["expires_at"],
                    actor=admin_actor(request),
                )
            except ApiKeysError as error:
                form.add_error(
                    ISSUE_FIELD_FOR_ERROR.get(error.field or ""),
                    ValidationError(error.message, code=error.code),
                )
            else:
                self.log_addition(request, issued.api_key, [{"added": {}}])
                return self._show_secrets(request, [issued], title="Your new API key")
        return self._render_issue_form(request, form)

    def _owner_initial(self, request: HttpRequest) -> dict[str, Any]:
        """The owner named in the query string (``?organization=<pk>`` or ``?user=<pk>``,
        as the owner pages link), when it exists."""
        initial: dict[str, Any] = {}
        for name, model in (("organization", Organization), ("user", User)):
            value = request.GET.get(name, "")
            if value.isascii() and value.isdigit():  # "¹".isdigit() is True too
                owner = model.objects.filter(pk=value).first()
                if owner is not None:
                    initial[name] = owner
        return initial

    def _render_issue_form(self, request: HttpRequest, form: ApiKeyIssueForm) -> HttpResponse:
        fieldsets = [
            (None, {"fields": ["name", "organization", "user"]}),
            ("Access", {"fields": ["api", "scopes", "expires_at"]}),
        ]
        return self.render_add_form(
            request, form, fieldsets, title="Add API key", form_token=issue_form_token(request)
        )

    @staticmethod
    def _fresh_submission(request: HttpRequest, form: Any, message: str) -> bool:
        """False, with a form error, when this POST was already sent once (a reload of the
        page showing a secret): it must not issue or rotate a second time."""
        if consume_form_token(request):
            return True
        form.add_error(None, ValidationError(message, code="ALREADY_SUBMITTED"))
        return False

    # ------------------------------------------------------------------ rotate and revoke

    def _key_or_404(self, request: HttpRequest, object_id: str) -> ApiKey:
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No API key with that id.")
        return api_key

    def _page_context(self, request: HttpRequest, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            **extra,
        }

    @sensitive_variables("issued")
    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Give one key a new secret, shown once; optionally keep the old one for a while."""
        api_key = self._key_or_404(request, object_id)
        if not self.has_rotate_permission(request, api_key):
            raise PermissionDenied
        posted = request.method == "POST"
        form = RotateForm(request.POST if posted else None)
        if posted and form.is_valid() and self._fresh_submission(request, form, ALREADY_ROTATED):
            grace = form.cleaned_data["grace_seconds"]
            try:
                issued = services.api_key_rotate(
                    api_key=api_key, grace_seconds=grace, actor=admin_actor(request)
                )
            except ApiKeysError as error:
                form.add_error(None, ValidationError(error.message, code=error.code))
            else:
                self.log_change(request, issued.api_key, "Rotated.")
                return self._show_secrets(
                    request,
                    [issued],
                    title="The new secret of the rotated key",
                    notes=self._grace_notes(grace),
                )
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/rotate.html",
            self._page_context(
                request,
                title="Rotate API key",
                subtitle=str(api_key),
                original=api_key,
                form=form,
                form_token=issue_form_token(request),
                is_revoked=api_key.status == ApiKey.Status.REVOKED,
            ),
        )

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Revoke one key, after a confirmation page; it fails verification at once."""
        api_key = self._key_or_404(request, object_id)
        if not self.has_revoke_permission(request, api_key):
            raise PermissionDenied
        if request.method == "POST":
            services.api_key_revoke(api_key=api_key, actor=admin_actor(request))
            self.log_change(request, api_key, "Revoked.")
            self.message_user(
                request, f"The API key “{api_key.name}” was revoked.", messages.SUCCESS
            )
            return HttpResponseRedirect(change_url(api_key))
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/revoke.html",
            self._page_context(
                request,
                title="Revoke API key",
                subtitle=str(api_key),
                original=api_key,
                is_revoked=api_key.status == ApiKey.Status.REVOKED,
            ),
        )

    @admin.action(description="Rotate selected API keys", permissions=["rotate"])
    @sensitive_variables("rotated")
    def rotate_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """List action: a grace-period page first, then every new secret, once."""
        keys = list(queryset)
        applying = "apply" in request.POST
        form = RotateForm(request.POST if applying else None)
        if applying and form.is_valid() and self._fresh_submission(request, form, ALREADY_ROTATED):
            grace = form.cleaned_data["grace_seconds"]
            rotated: list[services.IssuedKey] = []
            skipped: list[ApiKey] = []
            # All or nothing: if anything unexpected fails half-way, no key is left with a
            # new secret that nobody saw.
            with transaction.atomic():
                for api_key in keys:
                    if api_key.status == ApiKey.Status.REVOKED:
                        skipped.append(api_key)
                        continue
                    try:
                        rotated.append(
                            services.api_key_rotate(
                                api_key=api_key, grace_seconds=grace, actor=admin_actor(request)
                            )
                        )
                    except ApiKeysError:
                        skipped.append(api_key)  # revoked meanwhile
            for issued in rotated:
                self.log_change(request, issued.api_key, "Rotated.")
            notes = self._grace_notes(grace) if rotated else []
            if skipped:
                notes.append(
                    "Not rotated, because revoked keys cannot be rotated: "
                    + ", ".join(str(k) for k in skipped)
                    + "."
                )
            if not rotated:
                self.message_user(request, " ".join(notes), messages.WARNING)
                return None
            return self._show_secrets(
                request, rotated, title="The new secrets of the rotated keys", notes=notes
            )
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/rotate_selected.html",
            self._page_context(
                request,
                title="Rotate API keys",
                keys=keys,
                form=form,
                form_token=issue_form_token(request),
                action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
            ),
        )

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """List action: a confirmation page first, then every selected key is revoked."""
        keys = list(queryset)
        if request.POST.get("post") == "yes":
            actor = admin_actor(request)
            revoked = [k for k in keys if k.status != ApiKey.Status.REVOKED]
            with transaction.atomic():
                for api_key in revoked:
                    services.api_key_revoke(api_key=api_key, actor=actor)
            for api_key in revoked:
                self.log_change(request, api_key, "Revoked.")
            self.message_user(request, f"Revoked {len(revoked)} API key(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/revoke_selected.html",
            self._page_context(
                request,
                title="Revoke API keys",
                keys=keys,
                action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
            ),
        )

    # ------------------------------------------------------------------ shown once

    @staticmethod
    def _grace_notes(grace: int) -> list[str]:
        if grace:
            return [f"The previous secret keeps working for {grace} seconds, then stops."]
        return ["The previous secret has stopped working."]

    @sensitive_variables()
    def _show_secrets(
        self,
        request: HttpRequest,
        issued: Iterable[services.IssuedKey],
        *,
        title: str,
        notes: Iterable[str] = (),
    ) -> HttpResponse:
        items = list(issued)
        secrets = [
            ShownSecret(
                title=item.api_key.name,
                value=item.plaintext,
                label="API key",
                url=change_url(item.api_key),
                details=(
                    ("Key id", item.api_key.id),
                    ("Owner", self._owner_label(item.api_key)),
                    ("API", self._api_label(item.api_key)),
                    ("Scopes", " ".join(item.api_key.scope_list) or "none"),
                ),
            )
            for item in items
        ]
        if len(items) == 1:
            back_url = change_url(items[0].api_key)
            back_label = "I have stored it: go to the key"
        else:
            back_url = reverse("admin:apikeys_apikey_changelist")
            back_label = "I have stored them: back to the API keys"
        return render_shown_once(
            request,
            self,
            title=title,
            secrets=secrets,
            notes=notes,
            back_url=back_url,
            back_label=back_label,
            if_lost="If a key is lost, rotate it to get a new secret.",
        )

    @staticmethod
    def _api_label(api_key: ApiKey) -> str:
        name = api_key.api.name if api_key.api else api_key.api_public_id
        return f"{name} ({api_key.audience})"

    @staticmethod
    def _owner_label(api_key: ApiKey) -> str:
        if api_key.owner_deleted:
            return f"deleted {api_key.type} ({api_key.owner_code})"
        if api_key.organization_id:
            return f"{api_key.organization.name} ({api_key.org_code})"
        return f"{api_key.user} ({api_key.user_public_id})"
