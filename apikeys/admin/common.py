"""What every admin of the package shares: the acting admin, service errors, formsets saved
through services, and the page that shows a new secret once.

The admin never writes a row itself. Each ``ModelAdmin`` here turns Django's save and delete
hooks into calls of :mod:`apikeys.services`, so that every change lands in the audit trail
with the admin as actor, exactly as it would through the Management API or the portal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers, widgets
from django.contrib.admin.utils import quote
from django.core.exceptions import ValidationError
from django.db import models
from django.forms import BaseModelFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables

from apikeys import services
from apikeys.exceptions import ApiKeysError
from apikeys.http import NUL, client_ip

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices

    class _InputFilterChoice(_ListFilterChoices):
        hidden_params: list[tuple[str, str]]


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


# --------------------------------------------------------------------------- tampered input

# The widest integer any backend stores (PostgreSQL's bigint; SQLite's driver refuses more).
_INTEGER_RANGE = range(-(2**63), 2**63)


def is_valid_lookup_value(model_field: models.Field[Any, Any], value: str) -> bool:
    """Whether ``value`` (as a browser sent it) can name a row by ``model_field`` at all.

    A value that cannot (a NUL, which PostgreSQL refuses in text; a non-integer or one past
    the column's range for an integer id; text longer than the column) reaches the database
    as an error, a 500, on one backend or another: it names nothing, so it is refused first.
    """
    if NUL in value:
        return False
    try:
        python_value = model_field.to_python(value)
        model_field.run_validators(python_value)
    except (ValidationError, ValueError, TypeError):
        return False
    return not isinstance(python_value, int) or python_value in _INTEGER_RANGE


class SafeAutocompleteMixin:
    """An autocomplete widget draws the submitted value back (a form with errors) by looking
    it up; a tampered value (``organization=abc``) made that lookup a 500. Values that
    cannot name a row are dropped before it: the field itself reports them as invalid."""

    def optgroups(
        self, name: str, value: Sequence[str], attr: dict[str, Any] | None = None
    ) -> list[tuple[str | None, list[dict[str, Any]], int | None]]:
        remote = self.field.remote_field  # type: ignore[attr-defined]
        opts = remote.model._meta
        target = opts.get_field(getattr(remote, "field_name", None) or opts.pk.name)
        valid = [v for v in value if is_valid_lookup_value(target, str(v))]
        return super().optgroups(name, valid, attr)  # type: ignore[misc]


class SafeAutocompleteSelect(SafeAutocompleteMixin, widgets.AutocompleteSelect):
    pass


class SafeAutocompleteSelectMultiple(SafeAutocompleteMixin, widgets.AutocompleteSelectMultiple):
    pass


class SafeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django checks each submitted id, then looks them all up with ``pk__in``; a number past
    64 bits passed the first check and made SQLite's driver raise (a 500). Values that cannot
    be ids are refused first, with the field's own "not a valid value" error."""

    def _check_values(self, value: Any) -> Any:
        # Only ever called on a field with a queryset (django-stubs types it as optional).
        assert self.queryset is not None
        opts = self.queryset.model._meta
        key_field = opts.get_field(self.to_field_name) if self.to_field_name else opts.pk
        if isinstance(value, (list, tuple)):
            for pk in value:
                if isinstance(pk, str) and not is_valid_lookup_value(key_field, pk):
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"],
                        code="invalid_pk_value",
                        params={"pk": pk},
                    )
        # A private method of Django's that django-stubs does not declare.
        return super()._check_values(value)  # type: ignore[misc]


class TamperedInputMixin:
    """Hand-made admin POSTs are refused as a 400 or a form error, never a 500. Every
    ``ModelAdmin`` (through :class:`QuietMissingObjectMixin`) and every inline with
    autocomplete fields has it.

    - A change-list POST whose selected ids (``_selected_action``) cannot be ids of the list
      is a 400, before any action or query runs (Django filters ``pk__in`` with them).
    - Autocomplete fields use the widgets above, which draw a tampered value back safely;
      many-to-many fields use :class:`SafeModelMultipleChoiceField`.
    """

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            pk = self.model._meta.pk  # type: ignore[attr-defined]
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
            if not all(is_valid_lookup_value(pk, value) for value in selected):
                return HttpResponseBadRequest("The selection names no item of this list.")
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        autocomplete = self.get_autocomplete_fields(request)  # type: ignore[attr-defined]
        if "widget" not in kwargs and db_field.name in autocomplete:
            kwargs["widget"] = SafeAutocompleteSelect(
                db_field,
                self.admin_site,  # type: ignore[attr-defined]
                using=kwargs.get("using"),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        kwargs.setdefault("form_class", SafeModelMultipleChoiceField)
        autocomplete = self.get_autocomplete_fields(request)  # type: ignore[attr-defined]
        if "widget" not in kwargs and db_field.name in autocomplete:
            kwargs["widget"] = SafeAutocompleteSelectMultiple(
                db_field,
                self.admin_site,  # type: ignore[attr-defined]
                using=kwargs.get("using"),
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


class QuietMissingObjectMixin(TamperedInputMixin):
    """Django's "… with ID “…” doesn't exist" message quotes the id typed into the URL; an
    API key pasted there by mistake would come back on the next page (and sit in the message
    storage until then). This one names the kind of object, not the id.

    Every admin of the project has this mixin, and with it the tampered-input guards."""

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


_ModelT = TypeVar("_ModelT", bound=models.Model)
_FormT = TypeVar("_FormT", bound="ModelForm[Any]")


def save_formset_through(
    formset: BaseModelFormSet[_ModelT, _FormT],
    *,
    create: Callable[[_FormT], _ModelT],
    update: Callable[[_FormT], _ModelT] | None = None,
    delete: Callable[[_ModelT], None] | None = None,
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

    def choices(self, changelist: Any) -> Iterator[_InputFilterChoice]:
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
