"""The writes of the API key admin: issue, rotate and revoke, one at a time or as list
actions, and the page that shows new secrets once.

Rules:

- Every write goes through the service (``api_key_issue``, ``api_key_rotate``,
  ``api_key_revoke``) with the admin as actor; nothing here changes a key itself.
- A new secret is shown once, on the response to the POST that made it; a reload of that
  POST (its one-time form token already spent) issues or rotates nothing.
- Issuing needs ``add_apikey``; rotating and revoking need ``change_apikey``.
- A list action is all or nothing: no key is left with a new secret that nobody saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.debug import sensitive_variables

from apikeys import services
from apikeys.admin.common import (
    ServiceModelAdmin,
    ShownSecret,
    admin_actor,
    change_url,
    render_shown_once,
)
from apikeys.admin.forms import ApiKeyIssueForm, RotateForm
from apikeys.exceptions import ApiKeysError
from apikeys.formtokens import consume_form_token, issue_form_token
from apikeys.limitsforms import LIMIT_FIELD_FOR_ERROR, ApiKeyLimitsForm
from apikeys.models import ApiKey, Organization

User = get_user_model()

# Where the issue form shows an error a service raised about one of its inputs.
ISSUE_FIELD_FOR_ERROR = {"name": "name", "scope_ids": "scopes", "expires_at": "expires_at"}

ALREADY_ISSUED = (
    "This form had already been sent, so no second key was issued. A key's secret is shown "
    "only once; if it was lost, rotate the key."
)
ALREADY_ROTATED = (
    "This form had already been sent, so the key was not rotated again. If the new secret "
    "was lost, rotate the key once more."
)


class ApiKeyWriteViews(ServiceModelAdmin):
    """The issue, rotate and revoke views and list actions of :class:`ApiKeyAdmin`."""

    # ------------------------------------------------------------------ permissions

    def has_rotate_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_revoke_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_rotate_permission(request, obj)

    # ------------------------------------------------------------------ URLs

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/rotate/", wrap(self.rotate_view), name=f"{prefix}_rotate"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name=f"{prefix}_revoke"),
            path("<path:object_id>/limits/", wrap(self.limits_view), name=f"{prefix}_limits"),
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
                    ratelimit=form.limits()[0],
                    credits=form.limits()[1],
                    actor=admin_actor(request),
                )
            except ApiKeysError as error:
                form.add_error(
                    ISSUE_FIELD_FOR_ERROR.get(error.field or "")
                    or LIMIT_FIELD_FOR_ERROR.get(error.field or ""),
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
            ("Usage limits", {"fields": list(ApiKeyIssueForm.LIMIT_FIELDS)}),
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
        api_key: ApiKey | None = self.get_object(request, unquote(object_id))
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

    def limits_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Change an active key's usage limits (``api_key_update``: audited, and every
        worker sees the change at once)."""
        api_key = self._key_or_404(request, object_id)
        if not self.has_rotate_permission(request, api_key):
            raise PermissionDenied
        posted = request.method == "POST"
        form = ApiKeyLimitsForm(
            request.POST if posted else None, initial=ApiKeyLimitsForm.initial_of(api_key)
        )
        if posted and form.is_valid():
            ratelimit, credits = form.limits()
            try:
                services.api_key_update(
                    api_key=api_key,
                    ratelimit=ratelimit,
                    credits=credits,
                    actor=admin_actor(request),
                )
            except ApiKeysError as error:
                form.add_error(
                    LIMIT_FIELD_FOR_ERROR.get(error.field or ""),
                    ValidationError(error.message, code=error.code),
                )
            else:
                self.log_change(request, api_key, "Usage limits changed.")
                self.message_user(
                    request, f"The usage limits of “{api_key.name}” were saved.", messages.SUCCESS
                )
                return HttpResponseRedirect(change_url(api_key))
        return TemplateResponse(
            request,
            "admin/apikeys/apikey/limits.html",
            self._page_context(
                request,
                title="Usage limits",
                subtitle=str(api_key),
                original=api_key,
                form=form,
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
        if api_key.organization is not None:
            return f"{api_key.organization.name} ({api_key.org_code})"
        return f"{api_key.user} ({api_key.user_public_id})"
