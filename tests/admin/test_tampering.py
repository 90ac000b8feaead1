"""Tampered admin input is refused, never a 500 (issue 13, item 7).

A browser only sends the values the page offered, but a hand-made POST can send anything: a
NUL character (PostgreSQL refuses it in text), a non-integer where an integer id goes, a
number too large for the column. On every registered admin:

- a change list's action with such a ``_selected_action`` is a 400 (nothing changes);
- an add or change form with such a value in a choice field (an organization, a user, an
  API, a scope, a permission, a membership's other side...) is the form again with the
  error shown (200), nothing created;
- a change list's filters and search with such a value are the list, or Django's "?e=1".

Run on SQLite and on PostgreSQL (``DATABASE_URL``), where these typically broke.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from django import forms
from django.contrib import admin
from django.db.models import IntegerField, Model
from django.urls import reverse

from apikeys.admin import common
from apikeys.models import ApiKey, AuditEvent, Organization, User
from tests.admin.helpers import action_names
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

MODELS = sorted(admin.site._registry, key=lambda m: m._meta.label)
TAMPERED = {
    "nul": "1\x00",
    "nul-in-text": "api_key_\x00",
    "not-an-integer": "abc",
    "huge": "9" * 40,
}


# The self-serve settings and the platform's key policy are one row each: their list page
# only redirects to it.
SINGLETONS = {"portal.SelfServeSettings", "apikeys.PlatformKeyPolicy"}
LISTED = [m for m in MODELS if m._meta.label not in SINGLETONS]


def _label(model: type[Model]) -> str:
    return model._meta.label_lower


def _url(model: type[Model], view: str) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}")


def _snapshot() -> tuple[int, ...]:
    """Row counts that any change would move: every registered model and the audit trail."""
    return tuple(m._default_manager.count() for m in MODELS) + (AuditEvent.objects.count(),)


def test_every_registered_admin_and_autocompleting_inline_has_the_guards() -> None:
    """The guards live in one mixin; an admin registered without it would not have them."""
    admins = list(admin.site._registry.values())
    inlines = [
        inline
        for model_admin in admins
        for inline in model_admin.inlines
        if getattr(inline, "autocomplete_fields", ())
    ]
    unguarded = [type(a).__name__ for a in admins if not isinstance(a, common.TamperedInputMixin)]
    unguarded += [i.__name__ for i in inlines if not issubclass(i, common.TamperedInputMixin)]
    assert inlines, "the membership inlines autocomplete"
    assert unguarded == []


@pytest.fixture
def rows(db: Any, issued_key: Any, actor: Any) -> None:
    """A row of each model for the lists and change forms: a key, its API (with scopes) and
    organization, a user, a role, a staff group, an M2M application (and a token of it)."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from apikeys import services
    from apikeys.models import PlatformKeyPolicy
    from portal import services as portal_services
    from portal.models import SelfServeSettings

    person = UserFactory()
    OrganizationFactory()
    services.role_create(key="key-admin", name="Key admin", actor=actor)
    Group.objects.create(name="Support")
    issued = services.m2m_application_create(name="Backend", scopes=["read:api_keys"], actor=actor)
    APIClient().post(
        "/oauth2/token",
        {
            "grant_type": "client_credentials",
            "client_id": issued.application.client_id,
            "client_secret": issued.client_secret,
        },
    )
    SelfServeSettings.load()
    PlatformKeyPolicy.load()
    portal_services.portal_link_create(
        user=person, base_url="https://keys.example.com", actor=actor
    )
    # A webhook (a public address written as an IP: no DNS needed) and a delivery to it.
    services.webhook_create(
        endpoint_url="https://93.184.215.14/hooks", event_types=["api_key.rotated"], actor=actor
    )
    services.api_key_rotate(api_key=issued_key.api_key, actor=actor)


@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
@pytest.mark.parametrize("model", MODELS, ids=_label)
def test_a_tampered_selection_is_refused_on_every_change_list(
    admin_client: Any, rows: None, model: type[Model], tampered: str
) -> None:
    url = _url(model, "changelist")
    page = admin_client.get(url)
    before = _snapshot()
    if page.status_code == HTTPStatus.FOUND:
        # A one-row page (the self-serve settings) has no list: its "list" sends to the row.
        response = admin_client.post(
            url, {"action": "delete_selected", "_selected_action": [TAMPERED[tampered]]}
        )
        assert response.status_code == HTTPStatus.FOUND
        assert _snapshot() == before
        return
    assert page.status_code == HTTPStatus.OK
    actions = action_names(page) or ["delete_selected"]
    for action in actions:
        response = admin_client.post(
            url,
            {"action": action, "_selected_action": [TAMPERED[tampered]], "index": "0"},
        )
        # A value that cannot be an id of this list is a 400; one that can (a key id may be
        # any text) selects nothing: Django's "no items" redirect, or the page again.
        assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.FOUND, HTTPStatus.OK), (
            action,
            response.status_code,
        )
        if _invalid_id(model, TAMPERED[tampered]):
            assert response.status_code == HTTPStatus.BAD_REQUEST, action
    assert _snapshot() == before


def _invalid_id(model: type[Model], value: str) -> bool:
    """Whether ``value`` cannot be an id of ``model`` (its list then answers 400)."""
    if "\x00" in value:
        return True
    if isinstance(model._meta.pk, IntegerField):
        return not value.lstrip("-").isdigit() or abs(int(value)) >= 2**63
    return False


# --------------------------------------------------------------------------- the add forms


def _choice_fields(admin_client: Any, model: type[Model]) -> list[str]:
    page = admin_client.get(_url(model, "add"))
    assert page.status_code == HTTPStatus.OK
    form = page.context["adminform"].form
    return [
        name
        for name, field in form.fields.items()
        if isinstance(field, (forms.ChoiceField, forms.ModelChoiceField, forms.IntegerField))
    ]


@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
@pytest.mark.parametrize("model", MODELS, ids=_label)
def test_a_tampered_choice_on_an_add_form_is_a_form_error(
    admin_client: Any, rows: None, model: type[Model], tampered: str
) -> None:
    model_admin = admin.site._registry[model]
    request = admin_client.get(_url(model, "changelist")).wsgi_request
    before = _snapshot()
    if not model_admin.has_add_permission(request):
        # A read-only admin (audit trail, portal links...) has no add form to tamper with.
        assert admin_client.post(_url(model, "add"), {"id": TAMPERED[tampered]}).status_code in (
            HTTPStatus.FORBIDDEN,
            HTTPStatus.BAD_REQUEST,
        )
        assert _snapshot() == before
        return
    for name in _choice_fields(admin_client, model):
        response = admin_client.post(_url(model, "add"), {name: TAMPERED[tampered]})
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.BAD_REQUEST), (
            name,
            response.status_code,
        )
        if response.status_code == HTTPStatus.OK:
            assert response.context["adminform"].form.errors, name
    assert _snapshot() == before


@pytest.mark.parametrize("field", ["organization", "user", "api", "scopes"])
@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
def test_the_add_key_form_shows_an_error_for_a_tampered_owner_api_or_scope(
    admin_client: Any,
    api: Any,
    read_users: Any,
    organization: Organization,
    field: str,
    tampered: str,
) -> None:
    """The issue's own case: ``organization=abc`` or ``user=abc`` on the add-key form (its
    owner pickers search as the admin types, and drew the form again from the value)."""
    data = {
        "name": "Backend",
        "api": api.pk,
        "scopes": [read_users.pk],
        "organization": organization.pk,
        "user": "",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data[field] = TAMPERED[tampered]
    if field == "organization":
        data["user"] = ""
    response = admin_client.post(_url(ApiKey, "add"), data)
    assert response.status_code == HTTPStatus.OK
    form = response.context["adminform"].form
    assert field in form.errors
    assert not ApiKey.objects.exists()


# --------------------------------------------------------------------------- the change forms


def _change_form_data(admin_client: Any, url: str) -> tuple[dict[str, Any], list[Any]]:
    """What the change page would post back unchanged, and its inline formsets."""
    page = admin_client.get(url)
    assert page.status_code == HTTPStatus.OK
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is not None:
            data[name] = field.prepare_value(value)
    formsets = [inline.formset for inline in page.context["inline_admin_formsets"]]
    for formset in formsets:
        management = formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
    return data, formsets


@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
@pytest.mark.parametrize("model", [Organization, User], ids=_label)
def test_a_tampered_membership_on_a_change_form_is_a_form_error(
    admin_client: Any, rows: None, model: type[Model], tampered: str
) -> None:
    """The membership inlines pick the other side (a member, an organization) by
    autocomplete: a tampered pick is the form's error, not a 500 while drawing it again."""
    obj = model._default_manager.order_by("pk").last()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    data, formsets = _change_form_data(admin_client, url)
    [memberships] = [f for f in formsets if f.prefix == "memberships"]
    prefix = memberships.prefix
    other = "user" if model is Organization else "organization"
    data[f"{prefix}-TOTAL_FORMS"] = int(data[f"{prefix}-TOTAL_FORMS"]) + 1
    index = int(data[f"{prefix}-INITIAL_FORMS"])
    data[f"{prefix}-{index}-{other}"] = TAMPERED[tampered]
    before = _snapshot()
    response = admin_client.post(url, data)
    assert response.status_code == HTTPStatus.OK
    assert any(form.errors for form in response.context["inline_admin_formsets"][0].formset)
    assert _snapshot() == before


@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
@pytest.mark.parametrize("model", LISTED, ids=_label)
def test_a_tampered_filter_or_search_on_a_change_list_is_never_a_500(
    admin_client: Any, rows: None, model: type[Model], tampered: str
) -> None:
    """Every filter of the sidebar (and the search box) with a value no link offers."""
    url = _url(model, "changelist")
    page = admin_client.get(url)
    parameters = ["q"] + [
        name for spec in page.context["cl"].filter_specs for name in spec.expected_parameters()
    ]
    for name in parameters:
        response = admin_client.get(url, {name: TAMPERED[tampered]})
        # The list (maybe empty), Django's "?e=1" redirect for a bad lookup, or a 400 (NUL).
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND, HTTPStatus.BAD_REQUEST), (
            name,
            response.status_code,
        )


@pytest.mark.parametrize("tampered", list(TAMPERED), ids=list(TAMPERED))
@pytest.mark.parametrize("model", MODELS, ids=_label)
def test_a_tampered_choice_on_a_change_form_is_a_form_error(
    admin_client: Any, rows: None, model: type[Model], tampered: str
) -> None:
    """Each choice field of each change form (its other fields as the page showed them)."""
    from django.contrib.admin.utils import quote

    obj = model._default_manager.order_by("pk").last()
    assert obj is not None
    url = reverse(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[quote(obj.pk)]
    )
    model_admin = admin.site._registry[model]
    request = admin_client.get(url).wsgi_request
    before = _snapshot()
    if not model_admin.has_change_permission(request, obj):
        # Read-only records (audit trail, tokens, links): a POST changes nothing.
        response = admin_client.post(url, {"id": TAMPERED[tampered]})
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.FORBIDDEN), response.status_code
        assert _snapshot() == before
        return
    data, _formsets = _change_form_data(admin_client, url)
    page = admin_client.get(url)
    form = page.context["adminform"].form
    choices = [
        name
        for name, field in form.fields.items()
        if isinstance(field, (forms.ChoiceField, forms.ModelChoiceField, forms.IntegerField))
        and not field.disabled
    ]
    for name in choices:
        response = admin_client.post(url, {**data, name: TAMPERED[tampered]})
        assert response.status_code in (HTTPStatus.OK, HTTPStatus.BAD_REQUEST, HTTPStatus.FOUND), (
            name,
            response.status_code,
        )
        if response.status_code == HTTPStatus.OK:
            assert response.context["adminform"].form.errors, name
    assert _snapshot()[:-1] == before[:-1]  # no row added or removed
