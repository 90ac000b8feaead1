"""Admin of Django's auth groups, shown as "staff groups": bundles of admin permissions for
the platform's own staff.

Django registers its own ``GroupAdmin``, which writes rows directly. Who may issue, rotate or
revoke keys in this admin is decided by these groups, so that admin is replaced by one whose
writes go through ``services.staff_group_*`` and land in the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from apikeys import services
from apikeys.admin.common import ServiceModelAdmin, admin_actor, adopt

if admin.site.is_registered(Group):
    admin.site.unregister(Group)


@admin.register(Group)
class StaffGroupAdmin(ServiceModelAdmin):
    list_display = ("name", "permission_count", "member_count")
    search_fields = ("name",)
    ordering = ("name",)
    fields = ("name", "permissions")
    filter_horizontal = ("permissions",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                permission_total=Count("permissions", distinct=True),
                member_total=Count("user", distinct=True),
            )
        )

    @admin.display(description="permissions", ordering="permission_total")
    def permission_count(self, obj: Group) -> int:
        return obj.permission_total  # type: ignore[attr-defined]

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj: Group) -> int:
        return obj.member_total  # type: ignore[attr-defined]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "permissions":
            # Each permission's label names its content type: load them with the list.
            kwargs["queryset"] = db_field.remote_field.model.objects.select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        if change:
            return  # one staff_group_update in save_related, with the permission changes
        created = services.staff_group_create(
            name=form.cleaned_data["name"],
            permissions=form.cleaned_data["permissions"],
            actor=admin_actor(request),
        )
        adopt(obj, created)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Not form.save_m2m(): the permissions were set by the service that audited them.
        if not change:
            return
        changes = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in {"name", "permissions"}
        }
        if changes:
            services.staff_group_update(group=form.instance, actor=admin_actor(request), **changes)

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        services.staff_group_delete(group=obj, actor=admin_actor(request))
