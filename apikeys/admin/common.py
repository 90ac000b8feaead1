"""What every admin of the package shares: the acting admin, service errors, formsets saved
through services, and the page that shows a new secret once.

The admin never writes a row itself. Each ``ModelAdmin`` here turns Django's save and delete
hooks into calls of :mod:`apikeys.services`, so that every change lands in the audit trail
with the admin as actor, exactly as it would through the Management API or the portal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.db import models
from django.forms import BaseFormSet, BaseModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from apikeys import services
from apikeys.exceptions import ApiKeysError
from apikeys.http import client_ip


def admin_actor(request: HttpRequest) -> services.Actor:
    """The signed-in admin as the actor of a service call, with the IP they came from."""
    return services.Actor(user=request.user, ip=client_ip(request))


def change_url(obj: models.Model) -> str:
    """The admin page of ``obj``. Primary keys are quoted as the admin expects: a key id's
    underscores would otherwise be read as escapes (``api_key_22…``)."""
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])


def describe(error: ApiKeysError) -> str:
    """An error as an admin reads it: the sentence, and the stable code to search for."""
    return f"{error.message} ({error.code})"


def adopt(target: models.Model, saved: models.Model) -> None:
    """Make ``target`` (the admin's unsaved instance) the row a service just created.

    Django's add view keeps using its own instance after ``save_model`` (for the log entry,
    the inline formsets and the redirect); the service made the row, so the instance takes
    over its primary key and stored values.
    """
    for model_field in target._meta.concrete_fields:
        setattr(target, model_field.attname, getattr(saved, model_field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class QuietMissingObjectMixin:
    """Django's "… with ID “…” doesn't exist" message quotes the id typed into the URL; an
    API key pasted there by mistake would come back on the next page (and sit in the message
    storage until then). This one names the kind of object, not the id."""

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponseRedirect:
        self.message_user(  # type: ignore[attr-defined]
            request, f"That {opts.verbose_name} does not exist.", messages.WARNING
        )
        return HttpResponseRedirect(reverse("admin:index", current_app=self.admin_site.name))  # type: ignore[attr-defined]


class ReadOnlyAdminMixin:
    """For records nobody edits by hand (the audit trail, shipped permissions, portal
    links): viewable by those with the view permission, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceModelAdmin(QuietMissingObjectMixin, admin.ModelAdmin):
    """A ``ModelAdmin`` whose writes go through services.

    Forms check what they can up front (field validators, uniqueness), so a service
    rarely refuses; when it does (a race, a rule only the service knows, such as a scope
    still in use), Django's view has already opened its transaction: the error rolls the
    whole submission back, and the admin is sent back to the page with the reason.
    """


    def render_add_form(
        self,
        request: HttpRequest,
        form: Any,
        fieldsets: list[tuple[str | None, dict[str, Any]]],
        *,
        title: str,
        **extra: Any,
    ) -> HttpResponse:
        """Django's add page around a plain form of ours (not the model's ModelForm): for
        models that only a service may create, where the POST answers with a secret."""
        admin_form = helpers.AdminForm(form, fieldsets, {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
            **extra,
        }
        return self.render_change_form(request, context, add=True)

    class Media:
        css = {"all": ["apikeys/admin/admin.css"]}

    def _refused(self, request: HttpRequest, error: ApiKeysError) -> HttpResponse:
        self.message_user(request, describe(error), messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApiKeysError as error:
            return self._refused(request, error)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApiKeysError as error:
            return self._refused(request, error)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)
        except ApiKeysError as error:
            return self._refused(request, error)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        # The bulk "delete selected" action: one service call (and audit event) per row,
        # all or nothing (Django's changelist does not wrap actions in a transaction).
        from django.db import transaction

        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)


def save_formset_through(
    formset: BaseFormSet,
    *,
    create: Callable[[BaseModelForm], models.Model],
    update: Callable[[BaseModelForm], models.Model] | None = None,
    delete: Callable[[models.Model], None] | None = None,
) -> None:
    """Save an inline formset by calling services instead of ``formset.save()``.

    ``create`` is called for each new row, ``update`` for each changed row and ``delete`` for
    each row marked for deletion. The formset's ``new_objects``, ``changed_objects`` and
    ``deleted_objects`` are filled as ``save()`` would, for the admin's change message.
    """
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    deleted = set(formset.deleted_forms) if formset.can_delete else set()
    for form in formset.initial_forms:
        if form in deleted:
            if delete is not None:
                delete(form.instance)
                formset.deleted_objects.append(form.instance)
        elif update is not None and form.has_changed():
            formset.changed_objects.append((update(form), form.changed_data))
    for form in formset.extra_forms:
        if form in deleted or not form.has_changed():
            continue
        formset.new_objects.append(create(form))


# --------------------------------------------------------------------------- shown once


@dataclass(frozen=True)
class ShownSecret:
    """One secret to show on the shown-once page, with what identifies it.

    ``value`` is the plaintext; it is kept out of ``repr`` so that it never reaches a log or
    an error report through this object.
    """

    title: str
    value: str = field(repr=False)
    details: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    label: str = "Secret"


@sensitive_variables()
def render_shown_once(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    title: str,
    secrets: Iterable[ShownSecret],
    notes: Iterable[str] = (),
    back_url: str,
    back_label: str,
    if_lost: str,
) -> HttpResponse:
    """The page that shows new secrets, once: rendered straight into the response to the
    POST that made them, never stored (not in the session, messages or database), and sent
    with ``Cache-Control: no-store`` so that neither the browser nor a proxy keeps a copy.
    ``if_lost`` tells the admin what to do when a secret is lost.
    """
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "secrets": list(secrets),
        "notes": list(notes),
        "back_url": back_url,
        "back_label": back_label,
        "if_lost": if_lost,
    }
    request.current_app = model_admin.admin_site.name
    response = render(request, "admin/apikeys/shown_once.html", context)
    add_never_cache_headers(response)
    return response


# --------------------------------------------------------------------------- filters


class InputFilter(admin.SimpleListFilter):
    """A list filter that is a text box rather than a list of links: for values with too
    many choices to list (organization codes, owner ids), so the sidebar costs no query."""

    template = "admin/apikeys/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # One placeholder choice so that Django renders the filter at all.
        return [("", "")]

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
            # The other active filters and the search, kept as hidden inputs of the form.
            "hidden_params": [
                (name, value)
                for name, value in changelist.params.items()
                if name != self.parameter_name
            ],
        }
