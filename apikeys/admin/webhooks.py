"""Admin of webhooks (platform-wide endpoints of key events) and their deliveries.

Rules:

- Webhooks are created, changed and deleted through ``services.webhook_*`` (audited with
  the admin as actor); the signing secret is shown once, on the response to the POST that
  made it (a one-time form token: a reload makes no second webhook), and never again.
- The admin says when and why an endpoint was disabled (after failing for days in a row),
  in the list and on its page; ticking "Enabled" turns it back on.
- Deliveries are read-only: status, attempts, the last answer; "Retry" (a confirmation page,
  then a POST) and the list action send them again through ``services.webhook_delivery_retry``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_variables

from apikeys import services
from apikeys.admin.common import (
    ServiceModelAdmin,
    ShownSecret,
    admin_actor,
    change_url,
    render_shown_once,
)
from apikeys.exceptions import ApiKeysError
from apikeys.formtokens import consume_form_token, issue_form_token
from apikeys.models import WEBHOOK_EVENT_TYPES, Webhook, WebhookDelivery

EVENT_CHOICES = [(name, f"{name}: {text}") for name, text in WEBHOOK_EVENT_TYPES.items()]
FIELD_FOR_ERROR = {"endpoint_url": "endpoint_url", "event_types": "event_types"}
ALREADY_CREATED = (
    "This form had already been sent, so no second webhook was created. The signing secret "
    "is shown only once; if it was lost, delete the webhook and add it again."
)


class WebhookAddForm(forms.Form):
    endpoint_url = forms.CharField(
        label="Endpoint URL", max_length=2000, help_text="https://… where the events are POSTed."
    )
    event_types = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    description = forms.CharField(max_length=200, required=False)


class WebhookChangeForm(forms.ModelForm):
    endpoint_url = forms.CharField(label="Endpoint URL", max_length=2000)
    event_types = forms.MultipleChoiceField(
        choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    enabled = forms.BooleanField(
        required=False, help_text="Untick to stop sending; tick to send again after a disable."
    )

    class Meta:
        model = Webhook
        fields = ["endpoint_url", "event_types", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["enabled"].initial = self.instance.is_enabled


def _state(webhook: Webhook) -> str:
    if webhook.disabled_on is not None:
        if webhook.failing_since is not None:
            return (
                f"Disabled on {webhook.disabled_on:%Y-%m-%d %H:%M} UTC after failing since "
                f"{webhook.failing_since:%Y-%m-%d %H:%M} UTC"
            )
        return f"Disabled on {webhook.disabled_on:%Y-%m-%d %H:%M} UTC"
    if webhook.failing_since is not None:
        return f"Enabled, failing since {webhook.failing_since:%Y-%m-%d %H:%M} UTC"
    return "Enabled"


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ["-id"]
    fields = ["event_type", "status", "attempts", "last_status_code", "next_attempt_on"]
    readonly_fields = ["event_type", "status", "attempts", "last_status_code", "next_attempt_on"]
    verbose_name_plural = "Latest deliveries"

    @admin.display(description="Event")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("event")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(ServiceModelAdmin):
    form = WebhookChangeForm
    add_form_template = "admin/apikeys/webhook/add_form.html"
    list_display = ["endpoint_url", "events", "state", "created_on"]
    search_fields = ["endpoint_url", "description", "id"]
    readonly_fields = ["id", "state", "created_on", "created_by"]
    fields = [
        "id",
        "endpoint_url",
        "event_types",
        "description",
        "enabled",
        "state",
        "created_on",
        "created_by",
    ]
    inlines = [DeliveryInline]

    @admin.display(description="Events")
    def events(self, webhook: Webhook) -> str:
        return ", ".join(webhook.event_types)

    @admin.display(description="State")
    def state(self, webhook: Webhook) -> str:
        return _state(webhook)

    @sensitive_variables("created")
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Add a webhook through the service; the answer to the POST shows its secret."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        form = WebhookAddForm(request.POST if posted else None)
        if posted and form.is_valid():
            if not consume_form_token(request):
                form.add_error(None, ValidationError(ALREADY_CREATED, code="ALREADY_SUBMITTED"))
            else:
                data = form.cleaned_data
                try:
                    created = services.webhook_create(
                        endpoint_url=data["endpoint_url"],
                        event_types=data["event_types"],
                        description=data["description"],
                        actor=admin_actor(request),
                    )
                except ApiKeysError as error:
                    form.add_error(
                        FIELD_FOR_ERROR.get(error.field or ""),
                        ValidationError(error.message, code=error.code),
                    )
                else:
                    self.log_addition(request, created.webhook, [{"added": {}}])
                    return render_shown_once(
                        request,
                        self,
                        title="Your new webhook's signing secret",
                        secrets=[
                            ShownSecret(
                                title=created.webhook.endpoint_url,
                                value=created.secret,
                                label="Signing secret",
                                url=change_url(created.webhook),
                                details=(
                                    ("Webhook id", created.webhook.id),
                                    ("Events", ", ".join(created.webhook.event_types)),
                                ),
                            )
                        ],
                        back_url=change_url(created.webhook),
                        back_label="Go to the webhook",
                        if_lost="If it is lost, delete the webhook and add it again.",
                    )
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ["endpoint_url", "event_types", "description"]})
        ]
        return self.render_add_form(
            request, form, fieldsets, title="Add webhook", form_token=issue_form_token(request)
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        webhook = self.get_object(request, unquote(object_id))
        if webhook is not None and webhook.disabled_on is not None and request.method == "GET":
            self.message_user(
                request,
                f"This endpoint is disabled: {_state(webhook)}. Nothing is sent to it until "
                "it is enabled again.",
                messages.WARNING,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        data = form.cleaned_data
        updated = services.webhook_update(
            webhook=obj,
            endpoint_url=data["endpoint_url"],
            event_types=data["event_types"],
            description=data["description"],
            enabled=data["enabled"],
            actor=admin_actor(request),
        )
        obj.__dict__.update(updated.__dict__)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The deliveries inline is read-only: nothing to save, nothing to report.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request: HttpRequest, obj: Webhook) -> None:
        services.webhook_delete(webhook=obj, actor=admin_actor(request))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ServiceModelAdmin):
    list_display = [
        "id",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "last_answer",
        "next_attempt_on",
        "created_on",
    ]
    list_filter = ["status"]
    list_select_related = ["webhook", "event"]
    search_fields = ["id", "event__id", "webhook__endpoint_url"]
    actions = ["retry_selected"]
    readonly_fields = [
        "id",
        "webhook_link",
        "event_type",
        "event_id",
        "status",
        "attempts",
        "last_attempt_on",
        "last_status_code",
        "last_response",
        "next_attempt_on",
        "created_on",
    ]
    fields = list(readonly_fields)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("apikeys.change_webhookdelivery")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # nothing is edited here; retry has its own view

    @admin.display(description="Endpoint")
    def endpoint(self, delivery: WebhookDelivery) -> str:
        return delivery.webhook.endpoint_url

    @admin.display(description="Webhook")
    def webhook_link(self, delivery: WebhookDelivery) -> str:
        return format_html(
            '<a href="{}">{}</a>', change_url(delivery.webhook), delivery.webhook.endpoint_url
        )

    @admin.display(description="Event")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description="Last answer")
    def last_answer(self, delivery: WebhookDelivery) -> str:
        return delivery.last_response[:80]

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{prefix}_retry"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_retry": self.has_retry_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Send one delivery again, after a confirmation page."""
        delivery: WebhookDelivery | None = self.get_object(request, unquote(object_id))
        if delivery is None:
            raise Http404("No delivery with that id.")
        if not self.has_retry_permission(request, delivery):
            raise PermissionDenied
        if request.method == "POST":
            try:
                services.webhook_delivery_retry(delivery=delivery, actor=admin_actor(request))
            except ApiKeysError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, "The delivery will be sent again.", messages.SUCCESS)
            return HttpResponseRedirect(change_url(delivery))
        return TemplateResponse(
            request,
            "admin/apikeys/webhookdelivery/retry.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Retry delivery",
                "original": delivery,
                "disabled": delivery.webhook.disabled_on is not None,
            },
        )

    @admin.action(description="Retry selected deliveries", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        retried = 0
        for delivery in queryset.select_related("webhook"):
            try:
                services.webhook_delivery_retry(delivery=delivery, actor=admin_actor(request))
            except ApiKeysError:
                continue
            retried += 1
        self.message_user(request, f"{retried} deliveries will be sent again.", messages.SUCCESS)
