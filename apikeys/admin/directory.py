"""Admin of who may hold keys: organizations (with their members and keys), users (with
their memberships and keys), roles and the system permissions they grant.

Every save and delete goes through :mod:`apikeys.services`, audited with the admin as actor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from apikeys import services
from apikeys.admin.common import (
    QuietMissingObjectMixin,
    ReadOnlyAdminMixin,
    ServiceModelAdmin,
    TamperedInputMixin,
    admin_actor,
    adopt,
    save_formset_through,
)
from apikeys.admin.forms import (
    CHECKBOXES,
    OrganizationMembershipForm,
    UserAddForm,
    UserChangeForm,
    UserMembershipForm,
)
from apikeys.admin.policies import OrganizationKeyPolicyInline, save_key_policy
from apikeys.models import (
    ApiKey,
    Membership,
    Organization,
    OrganizationKeyPolicy,
    Role,
    SystemPermission,
)

User = get_user_model()

# How many of an owner's keys its page lists; the rest are one click away, in the key list.
KEYS_ON_OWNER_PAGE = 10


def keys_overview(keys: QuerySet[ApiKey], *, owner_code: str) -> SafeString:
    """An owner's latest keys as a small table, with the total and a link to all of them:
    two queries, whatever the number of keys."""
    total = keys.count()
    latest = list(keys.select_related("api").order_by("-id")[:KEYS_ON_OWNER_PAGE])
    list_url = reverse("admin:apikeys_apikey_changelist")
    return SafeString(
        render_to_string(
            "admin/apikeys/includes/keys_overview.html",
            {"keys": latest, "total": total, "all_url": f"{list_url}?owner={owner_code}"},
        )
    )


def _can_issue_keys(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    key_admin = model_admin.admin_site._registry.get(ApiKey)
    return bool(key_admin and key_admin.has_add_permission(request))


class KeyOwnerAdmin(ServiceModelAdmin):
    """An admin of a model that owns keys (organizations, users)."""

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_issue_keys": _can_issue_keys(self, request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # The owner's field on ApiKey ("organization" / "user") and its public code's attribute.
    key_owner_field = ""
    owner_code_attribute = ""

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The confirmation says what happens to the owner's keys: revoked, never deleted.
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_delete_permission(request, obj):
            keys = ApiKey.objects.filter(**{self.key_owner_field: obj})
            extra_context = {
                **(extra_context or {}),
                "owned_keys": keys.count(),
                "active_owned_keys": keys.filter(status=ApiKey.Status.ACTIVE).count(),
                "owner_code": getattr(obj, self.owner_code_attribute),
            }
        return super().delete_view(request, object_id, extra_context)


# --------------------------------------------------------------------------- memberships


class MembershipFormSet(BaseInlineFormSet):
    """Membership rows that share one list of role choices: without this, every row
    queries the roles again to draw its checkboxes."""

    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        # A private method of Django's formsets that django-stubs does not declare.
        form = super()._construct_form(i, **kwargs)  # type: ignore[misc]
        field = form.fields.get("roles")
        if isinstance(field, forms.ModelMultipleChoiceField):
            if not hasattr(self, "_role_choices"):
                # A model choice field's choices are a ModelChoiceIterator (django-stubs
                # types the getter as any kind of choices input, callables included).
                self._role_choices = list(cast("Iterable[Any]", field.choices))
            field.choices = self._role_choices
        return form


class MembershipInline(TamperedInputMixin, admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    readonly_fields = ("joined_on",)
    formfield_overrides = {models.ManyToManyField: {"widget": CHECKBOXES}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return (
            super()
            .get_queryset(request)
            .select_related("organization", "user")
            .prefetch_related("roles")
        )


class OrganizationMembershipInline(MembershipInline):
    form = OrganizationMembershipForm
    fields = ("user", "roles", "joined_on")
    autocomplete_fields = ("user",)
    verbose_name = "member"
    verbose_name_plural = "members"


class UserMembershipInline(MembershipInline):
    form = UserMembershipForm
    fields = ("organization", "roles", "joined_on")
    autocomplete_fields = ("organization",)
    verbose_name = "membership"
    verbose_name_plural = "memberships"


def save_memberships(
    formset: BaseInlineFormSet,
    *,
    organization: Organization | None = None,
    user: Any = None,
    actor: services.Actor,
) -> None:
    """Save a membership inline of an organization's or a user's page through the
    membership services (one of ``organization`` / ``user`` is the page's object)."""

    def add(form: forms.ModelForm) -> Membership:
        return services.membership_add(
            organization=organization or form.cleaned_data["organization"],
            user=user or form.cleaned_data["user"],
            roles=form.cleaned_data["roles"],
            actor=actor,
        )

    def change_roles(form: forms.ModelForm) -> Membership:
        membership = form.instance
        return services.membership_add(
            organization=membership.organization,
            user=membership.user,
            roles=form.cleaned_data["roles"],
            actor=actor,
        )

    def remove(membership: Membership) -> None:
        services.membership_remove(
            organization=membership.organization, user=membership.user, actor=actor
        )

    save_formset_through(formset, create=add, update=change_roles, delete=remove)


# --------------------------------------------------------------------------- organizations


@admin.register(Organization)
class OrganizationAdmin(KeyOwnerAdmin):
    key_owner_field, owner_code_attribute = "organization", "code"
    list_display = ("name", "code", "created_on")
    search_fields = ("name", "=code")
    search_help_text = "Name, or the exact organization code (org_…)."
    list_filter = (("created_on", admin.DateFieldListFilter),)
    show_full_result_count = False
    inlines = [OrganizationMembershipInline, OrganizationKeyPolicyInline]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return [(None, {"fields": ["name", "code"]})]
        return [
            (None, {"fields": ["code", "name", "created_on"]}),
            ("API keys", {"fields": ["api_keys"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The code is the organization's public id: fixed once created.
        return ["created_on", "api_keys"] + (["code"] if obj is not None else [])

    @admin.display(description="API keys")
    def api_keys(self, obj: Organization) -> SafeString:
        return keys_overview(ApiKey.objects.filter(organization=obj), owner_code=obj.code)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        actor = admin_actor(request)
        data = form.cleaned_data
        if not change:
            adopt(
                obj, services.organization_create(name=data["name"], code=data["code"], actor=actor)
            )
        elif "name" in form.changed_data:
            services.organization_update(organization=obj, name=data["name"], actor=actor)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        for formset in formsets:
            if formset.model is OrganizationKeyPolicy:
                save_key_policy(formset, organization=form.instance, actor=admin_actor(request))
            else:
                save_memberships(formset, organization=form.instance, actor=admin_actor(request))

    def delete_model(self, request: HttpRequest, obj: Organization) -> None:
        services.organization_delete(organization=obj, actor=admin_actor(request))


# --------------------------------------------------------------------------- users


@admin.register(User)
class UserAdmin(KeyOwnerAdmin):
    key_owner_field, owner_code_attribute = "user", "public_id"
    list_display = ("email", "full_name", "public_id", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "first_name", "last_name", "username", "=public_id")
    search_help_text = "Email, name, sign-in name, or the exact user id (kp_…)."
    # Newest first, by primary key: an index walk however many users there are.
    ordering = ("-pk",)
    show_full_result_count = False
    filter_horizontal = ("groups", "user_permissions")
    inlines = [UserMembershipInline]
    form = UserChangeForm

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return [
                (None, {"fields": ["email", "first_name", "last_name", "password1", "password2"]})
            ]
        return [
            (
                None,
                {
                    "fields": [
                        "public_id",
                        "username",
                        "email",
                        "first_name",
                        "last_name",
                        "password_status",
                    ]
                },
            ),
            (
                "Admin access",
                {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
            ),
            ("Dates", {"fields": ["last_login", "date_joined"]}),
            ("API keys", {"fields": ["api_keys"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["public_id", "username", "password_status", "last_login", "date_joined", "api_keys"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = UserAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user_permissions":
            # Each permission's label names its content type: load them with the list.
            kwargs["queryset"] = db_field.remote_field.model.objects.select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj: Any) -> str:
        return obj.get_full_name()

    @admin.display(description="password")
    def password_status(self, obj: Any) -> str:
        if obj.has_usable_password():
            return "Set: this person can sign in here with a password."
        return "None: this person signs in through one-time portal links only."

    @admin.display(description="API keys")
    def api_keys(self, obj: Any) -> SafeString:
        return keys_overview(ApiKey.objects.filter(user=obj), owner_code=obj.public_id)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # one user_update in save_related, with the permission changes
        data = form.cleaned_data
        created = services.user_create(
            email=data["email"],
            given_name=data["first_name"],
            family_name=data["last_name"],
            password=data.get("password1") or None,
            actor=admin_actor(request),
        )
        adopt(obj, created)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        actor = admin_actor(request)
        if change:
            arguments = {
                "email": "email",
                "first_name": "given_name",
                "last_name": "family_name",
                "is_active": "is_active",
                "is_staff": "is_staff",
                "is_superuser": "is_superuser",
                "groups": "groups",
                "user_permissions": "user_permissions",
            }
            changes = {
                arguments[name]: form.cleaned_data[name]
                for name in form.changed_data
                if name in arguments
            }
            if changes:
                services.user_update(user=form.instance, actor=actor, **changes)
        for formset in formsets:
            save_memberships(formset, user=form.instance, actor=actor)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.user_delete(user=obj, actor=admin_actor(request))


# --------------------------------------------------------------------------- roles


@admin.register(Role)
class RoleAdmin(ServiceModelAdmin):
    list_display = ("name", "key", "permissions", "created_on")
    search_fields = ("name", "key")
    fields = ("key", "name", "description", "system_permissions")
    formfield_overrides = {models.ManyToManyField: {"widget": CHECKBOXES}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Role]:
        return super().get_queryset(request).prefetch_related("system_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Callers refer to a role by its key: fixed once created.
        return ["key"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The audit trail has no "role deleted" action, and memberships would silently
        # lose what the role granted: roles are not deleted here.
        return False

    @admin.display(description="system permissions")
    def permissions(self, obj: Role) -> str:
        return ", ".join(p.key for p in obj.system_permissions.all()) or "—"

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        actor = admin_actor(request)
        data = form.cleaned_data
        if not change:
            created = services.role_create(
                key=data["key"], name=data["name"], description=data["description"], actor=actor
            )
            adopt(obj, created)
        elif {"name", "description"} & set(form.changed_data):
            services.role_update(
                role=obj, name=data["name"], description=data["description"], actor=actor
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        role = form.instance
        wanted = {p.key for p in form.cleaned_data["system_permissions"]}
        current = set(role.system_permissions.values_list("key", flat=True)) if change else set()
        if wanted != current:
            services.role_change_permissions(
                role=role,
                add=sorted(wanted - current),
                remove=sorted(current - wanted),
                actor=admin_actor(request),
            )


@admin.register(SystemPermission)
class SystemPermissionAdmin(ReadOnlyAdminMixin, QuietMissingObjectMixin, admin.ModelAdmin):
    """The permissions the product understands: shipped by a migration, read-only."""

    list_display = ("key", "description")
    search_fields = ("key",)
