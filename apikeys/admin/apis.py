"""Admin of APIs and their scopes (inline), written through the API and scope services.

An API's name and audience are fixed once created: every key copies its API's audience at
issue time and verification compares against that copy, so a changed audience would split
old keys from new ones (and there is no service, nor audit action, for it). Scopes are
added, described and deleted inline; a scope's key is fixed, and a scope or API that active
keys still use cannot be deleted (the service refuses, and the admin says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from apikeys import services
from apikeys.admin.common import ServiceModelAdmin, admin_actor, adopt, save_formset_through
from apikeys.admin.forms import ScopeInlineForm
from apikeys.models import Api, Scope

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups


class ScopeInline(admin.TabularInline):
    model = Scope
    form = ScopeInlineForm
    fields = ("key", "description", "id")
    readonly_fields = ("id",)
    verbose_name_plural = "scopes"

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 3 if obj is None else 1


@admin.register(Api)
class ApiAdmin(ServiceModelAdmin):
    list_display = ("name", "audience", "id", "created_on")
    search_fields = ("name", "audience", "=id")
    search_help_text = "Name, audience, or the exact API id."
    inlines = [ScopeInline]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        return ["name", "audience"] if obj is None else ["id", "name", "audience", "created_on"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["id", "name", "audience", "created_on"]

    def save_model(self, request: HttpRequest, obj: Api, form: Any, change: bool) -> None:
        if not change:
            data = form.cleaned_data
            adopt(
                obj,
                services.api_create(
                    name=data["name"], audience=data["audience"], actor=admin_actor(request)
                ),
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        actor = admin_actor(request)
        api = form.instance

        def create(scope_form: ModelForm) -> Scope:
            return services.scope_create(
                api=api,
                key=scope_form.cleaned_data["key"],
                description=scope_form.cleaned_data["description"],
                actor=actor,
            )

        def update(scope_form: ModelForm) -> Scope:
            return services.scope_update(
                scope=scope_form.instance,
                description=scope_form.cleaned_data["description"],
                actor=actor,
            )

        def delete(scope: Scope) -> None:
            services.scope_delete(scope=scope, actor=actor)

        for formset in formsets:
            save_formset_through(formset, create=create, update=update, delete=delete)

    def delete_model(self, request: HttpRequest, obj: Api) -> None:
        services.api_delete(api=obj, actor=admin_actor(request))
