"""Forms of the admin. They validate input and shape widgets; they never save anything
themselves (the admins pass their cleaned data to :mod:`apikeys.services`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin import widgets
from django.contrib.admin.sites import AdminSite
from django.contrib.auth import get_user_model, password_validation
from django.db.models import Model, Q

from apikeys import conf
from apikeys.admin.common import SafeAutocompleteSelect, SafeModelMultipleChoiceField
from apikeys.limitsforms import LimitFields
from apikeys.models import (
    MANAGEMENT_SCOPES,
    ROTATION_GRACE_CHOICES,
    Api,
    ApiKey,
    Organization,
    Scope,
)

if TYPE_CHECKING:
    from django.utils.safestring import SafeString

User = get_user_model()

# Checkboxes drawn one option a line (see admin.css): scopes, roles, system permissions.
CHECKBOXES = forms.CheckboxSelectMultiple(attrs={"class": "apikeys-checkboxes"})


# --------------------------------------------------------------------------- API keys


class ScopeCheckboxes(forms.CheckboxSelectMultiple):
    """Checkboxes for scopes, each tagged with its API (``data-api``) so that
    ``scope_filter.js`` can show only the scopes of the chosen API."""

    class Media:
        js = ["apikeys/admin/scope_filter.js"]

    def create_option(
        self,
        name: str,
        value: Any,
        label: Any,
        selected: bool,
        index: int,
        subindex: int | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        scope = getattr(value, "instance", None)
        if scope is not None:
            option["attrs"]["data-api"] = scope.api_id
        return option


class ScopeChoiceField(SafeModelMultipleChoiceField):
    def label_from_instance(self, obj: Model) -> str:
        assert isinstance(obj, Scope)
        return f"{obj.key} — {obj.description}" if obj.description else obj.key


class ApiKeyIssueForm(LimitFields):
    """Issue a key: a name, one owner, an API and scopes of that API only.

    Every scope of every API is a valid *choice* here, so that the page works (and can be
    tested) without JavaScript; that the scopes belong to the chosen API is the service's
    rule, and the admin reports its refusal on the scopes field.
    """

    name = forms.CharField(max_length=128, help_text="What the key is for, e.g. “Billing backend”.")
    organization = forms.ModelChoiceField(
        Organization.objects.all(),
        required=False,
        help_text="An organization-level key. Give an organization or a user, not both.",
    )
    user = forms.ModelChoiceField(User.objects.all(), required=False, help_text="A user-level key.")
    api = forms.ModelChoiceField(Api.objects.all(), label="API", empty_label="Choose an API")
    scopes = ScopeChoiceField(
        Scope.objects.all(),
        required=False,
        widget=ScopeCheckboxes(attrs={"class": "apikeys-checkboxes"}),
        help_text="Only the scopes of the chosen API are offered.",
    )
    expires_at = forms.SplitDateTimeField(
        required=False,
        widget=widgets.AdminSplitDateTime,
        label="Expires at",
        help_text="Optional (UTC). Leave empty for a key that does not expire.",
    )

    def __init__(self, *args: Any, admin_site: AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The owner pickers search as the admin types: an installation may have far too many
        # organizations and users for a drop-down.
        for name in ("organization", "user"):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.widget = SafeAutocompleteSelect(ApiKey._meta.get_field(name), admin_site)
            field.widget.choices = field.choices


class RotateForm(forms.Form):
    """Rotate: the previous secret may keep working for a grace period, picked as in the
    portal (now, 1 hour, 24 hours, 7 days) or, here only, typed in seconds."""

    CUSTOM = "custom"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The limit is read at use, so that a changed setting applies without a restart.
        limit = conf.get("MAX_ROTATION_GRACE_SECONDS")
        self.fields["grace_seconds"] = forms.ChoiceField(
            label="The previous secret stops working",
            choices=[
                *(
                    (str(seconds), label)
                    for seconds, label in ROTATION_GRACE_CHOICES
                    if seconds <= limit
                ),
                (self.CUSTOM, "After a number of seconds of your choice (below)"),
            ],
            initial="0",
            widget=forms.RadioSelect,
            help_text=(
                "A grace period lets callers roll the new secret out without downtime; "
                "revoking the key ends both secrets."
            ),
        )
        self.fields["custom_grace_seconds"] = forms.IntegerField(
            label="Seconds",
            min_value=1,
            max_value=limit,
            required=False,
            help_text=f"With the last choice: 1 to {limit}.",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        choice = cleaned.get("grace_seconds")
        if choice == self.CUSTOM:
            seconds = cleaned.get("custom_grace_seconds")
            if seconds is None and "custom_grace_seconds" not in self.errors:
                self.add_error("custom_grace_seconds", "Give the number of seconds.")
            cleaned["grace_seconds"] = seconds or 0
        elif choice is not None:
            cleaned["grace_seconds"] = int(choice)
        return cleaned


# --------------------------------------------------------------------------- people


class UserEmailMixin(forms.ModelForm):
    """A user's email is also a sign-in name: unique whatever its case, and not another
    user's sign-in name. The service checks the same; checking here too keeps what was
    typed on the page, next to the field at fault."""

    def clean_email(self) -> str:
        email = self.cleaned_data["email"]
        clash = User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email))
        if self.instance.pk is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if email and clash.exists():
            raise forms.ValidationError(
                "A user with this email already exists.", code="EMAIL_TAKEN"
            )
        return email


class UserAddForm(UserEmailMixin):
    """A new user: their email is also their sign-in name. A password is optional: without
    one the user signs in only through one-time portal links."""

    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional: only people who sign in here (platform staff) need one.",
    )
    password2 = forms.CharField(
        label="Password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name")
        labels = {"first_name": "Given name", "last_name": "Family name"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first or second:
            if first != second:
                self.add_error("password2", "The two passwords differ.")
            else:
                try:
                    password_validation.validate_password(first or "")
                except forms.ValidationError as error:
                    self.add_error("password1", error)
        return cleaned


class MembershipInlineForm(forms.ModelForm):
    """A membership row. Who is a member of what is fixed once the row exists (remove the
    row and add another instead); only the roles change. ``fixed_field`` names that side."""

    fixed_field = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.fixed_field in self.fields and not self.instance._state.adding:
            self.fields[self.fixed_field].disabled = True
            self.fields[self.fixed_field].widget = FixedValue(
                getattr(self.instance, self.fixed_field)
            )


class FixedValue(forms.Widget):
    """Shows an object that cannot change here, as text, without querying for choices."""

    def __init__(self, obj: Any) -> None:
        super().__init__()
        self.obj = obj

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        from django.utils.html import format_html

        return format_html('<div class="readonly">{}</div>', self.obj)


class OrganizationMembershipForm(MembershipInlineForm):
    fixed_field = "user"


class UserMembershipForm(MembershipInlineForm):
    fixed_field = "organization"


# --------------------------------------------------------------------------- APIs


class ScopeInlineForm(forms.ModelForm):
    """A scope row: its key is fixed once created (keys carry scopes by key), only its
    description changes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.fields["key"].disabled = True


# --------------------------------------------------------------------------- M2M applications


def management_scope_field(**kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=[(key, f"{key} — {text}") for key, text in MANAGEMENT_SCOPES.items()],
        widget=CHECKBOXES,
        label="Granted scopes",
        help_text="What this application's tokens may do in the Management API.",
        **kwargs,
    )


class M2MApplicationAddForm(forms.Form):
    """A new M2M application: its client secret is generated and shown once."""

    name = forms.CharField(max_length=255)
    scopes = management_scope_field()


class M2MApplicationChangeForm(forms.ModelForm):
    """An existing M2M application: its name and granted scopes change; credentials never."""

    scopes = management_scope_field(required=False)

    class Meta:
        fields = ("name",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        grant = getattr(self.instance, "m2m_grant", None) if self.instance.pk else None
        self.fields["scopes"].initial = grant.scope_list if grant else []


class UserChangeForm(UserEmailMixin):
    """An existing user: the names the API uses for the name fields."""

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name")
        labels = {"first_name": "Given name", "last_name": "Family name"}
