"""The portal's forms. They check input; the services in ``apikeys.services`` do the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from apikeys import conf
from apikeys.limitsforms import LimitFields
from apikeys.models import ROTATION_GRACE_CHOICES, Api, Scope
from apikeys.signin import ThrottledAuthenticationMixin


class PortalAuthenticationForm(ThrottledAuthenticationMixin, AuthenticationForm):
    """Django's sign-in form behind the sign-in throttle the admin shares
    (:mod:`apikeys.signin`)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. Check both and "
        "try again.",
    }
    throttle_messages = {
        "throttled": "Too many failed sign-in attempts. Wait a few minutes and try again, "
        "or open the portal from your app.",
        "unavailable": "Sign-in is unavailable for a moment. Try again shortly, or open the "
        "portal from your app.",
    }

    def __init__(self, request: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget.attrs.update(
            {"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        )
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"


def _queryset_of(field: forms.Field) -> QuerySet[Any]:
    """The choices of a model choice field declared with a queryset (which django-stubs
    types as optional)."""
    assert isinstance(field, forms.ModelChoiceField) and field.queryset is not None
    return field.queryset


@dataclass(frozen=True)
class ScopeChoice:
    scope: Scope
    checked: bool


@dataclass(frozen=True)
class ScopeGroup:
    """The scopes of one API, as the create form shows them."""

    api: Api
    choices: list[ScopeChoice]


class ApiKeyCreateForm(LimitFields):
    """Name, API and scopes of a new key. Only scopes of the chosen API are accepted."""

    name = forms.CharField(
        max_length=128,
        help_text="Something that says where the key is used, such as “Billing backend”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    api = forms.ModelChoiceField(
        queryset=Api.objects.order_by("name"),
        label="API",
        empty_label="Choose an API",
        help_text="The API the key is valid for.",
    )
    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.select_related("api").order_by("api__name", "key"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may do. Give it only what it needs.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        apis = list(_queryset_of(self.fields["api"]))
        if len(apis) == 1 and not self.is_bound:
            self.initial.setdefault("api", apis[0].pk)

    def clean(self) -> dict[str, Any]:
        super().clean()  # the limits' own checks (LimitFields)
        cleaned = self.cleaned_data  # what Form.clean() returns, typed as never None
        api = cleaned.get("api")
        scopes = cleaned.get("scopes") or []
        if api is not None:
            foreign = [s.key for s in scopes if s.api_id != api.pk]
            if foreign:
                # The page hides other APIs' scopes; a request that still names one is
                # refused rather than silently narrowed.
                self.add_error(
                    "scopes",
                    ValidationError(
                        "Not a scope of the chosen API: %(scopes)s.",
                        code="SCOPE_NOT_FOUND",
                        params={"scopes": ", ".join(foreign)},
                    ),
                )
        return cleaned

    def scope_groups(self) -> list[ScopeGroup]:
        """The scope checkboxes grouped by API, with what is checked."""
        chosen = {str(v) for v in (self["scopes"].value() or [])}
        groups: dict[str, ScopeGroup] = {}
        for scope in _queryset_of(self.fields["scopes"]):
            group = groups.setdefault(scope.api_id, ScopeGroup(api=scope.api, choices=[]))
            group.choices.append(ScopeChoice(scope=scope, checked=scope.pk in chosen))
        return list(groups.values())

    def selected_api_id(self) -> str:
        value = self["api"].value()
        return str(value) if value else ""


GRACE_CHOICES = ROTATION_GRACE_CHOICES


class ApiKeyRotateForm(forms.Form):
    """When the current secret should stop working after a rotation."""

    grace_seconds = forms.TypedChoiceField(
        coerce=int,
        choices=(),
        initial=0,
        label="The current secret stops working",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = conf.get("MAX_ROTATION_GRACE_SECONDS")
        cast("forms.TypedChoiceField", self.fields["grace_seconds"]).choices = [
            (seconds, label) for seconds, label in GRACE_CHOICES if seconds <= limit
        ]
