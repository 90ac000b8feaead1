"""Key policies in the admin: the platform default (one row, like the portal's self-serve
settings: the list page goes straight to it) and each organization's own policy (an inline
of the organization's page, in ``directory``). Every save goes through
:mod:`apikeys.services.policies`, audited with the admin as actor."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from apikeys import services
from apikeys.admin.common import ServiceModelAdmin, admin_actor, save_formset_through
from apikeys.models import OrganizationKeyPolicy, PlatformKeyPolicy

POLICY_FIELDS = ["max_lifetime_days", "max_active_keys", "max_idle_days"]


@admin.register(PlatformKeyPolicy)
class PlatformKeyPolicyAdmin(ServiceModelAdmin):
    """The platform default: applies to every organization without a policy of its own, and
    to the own keys of users in no organization."""

    fields = [*POLICY_FIELDS, "updated_on"]
    readonly_fields = ["updated_on"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(
            reverse("admin:apikeys_platformkeypolicy_change", args=[PlatformKeyPolicy.SINGLETON_ID])
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # A fresh install has no row until the policy is first saved (through the service):
        # until then the page shows the row's defaults, and viewing it writes nothing.
        found = super().get_object(request, object_id, from_field)
        if found is None and object_id == str(PlatformKeyPolicy.SINGLETON_ID):
            return PlatformKeyPolicy()
        return found

    def save_model(
        self, request: HttpRequest, obj: PlatformKeyPolicy, form: Any, change: bool
    ) -> None:
        services.platform_key_policy_update(
            **{name: form.cleaned_data[name] for name in POLICY_FIELDS},
            actor=admin_actor(request),
        )

    def response_change(self, request: HttpRequest, obj: PlatformKeyPolicy) -> HttpResponse:
        # "Save" would go to the list page, which only redirects back here.
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            self.message_user(request, "The platform's default API key policy was saved.")
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


class OptionalFormSet(BaseInlineFormSet):
    """An inline that a POST may leave out: a submission of the organization's page without
    this inline's forms (an older page, a script) leaves the policy as it is, rather than
    failing on the missing management form."""

    def __init__(self, data: Any = None, files: Any = None, *args: Any, **kwargs: Any) -> None:
        prefix = kwargs.get("prefix") or self.get_default_prefix()
        if data is not None and f"{prefix}-TOTAL_FORMS" not in data:
            data = files = None
        super().__init__(data, files, *args, **kwargs)

    def is_valid(self) -> bool:
        return super().is_valid() if self.is_bound else True


class OrganizationKeyPolicyInline(admin.StackedInline):
    """The organization's own policy, in place of the platform default; deleting it puts
    the organization back on the default."""

    model = OrganizationKeyPolicy
    formset = OptionalFormSet
    fields = tuple(POLICY_FIELDS)
    max_num = 1
    extra = 1
    verbose_name = "API key policy of its own (instead of the platform default)"
    verbose_name_plural = "API key policy"


def save_key_policy(formset: Any, *, organization: Any, actor: services.Actor) -> None:
    """Save the policy inline of an organization's page through the policy services."""

    def put(form: Any) -> OrganizationKeyPolicy:
        services.organization_key_policy_set(
            organization=organization,
            **{name: form.cleaned_data.get(name) for name in POLICY_FIELDS},
            actor=actor,
        )
        return OrganizationKeyPolicy.objects.get(organization=organization)

    def clear(row: OrganizationKeyPolicy) -> None:
        services.organization_key_policy_clear(organization=organization, actor=actor)

    if not formset.is_bound:  # left out of the POST (OptionalFormSet): nothing to save
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        return
    save_formset_through(formset, create=put, update=put, delete=clear)
