"""Admin of machine-to-machine applications (django-oauth-toolkit's ``Application``) and the
Management API scopes granted to them (``M2MGrant``).

django-oauth-toolkit's own admin would let a staff member edit credentials, grant types and
tokens without an audit trail; it is replaced:

- applications are created through ``services.m2m_application_create`` and their client
  secret is shown once (it is stored hashed), renamed, re-scoped and deleted through
  services;
- access tokens can be looked at, not edited (they carry the scopes of the grant they were
  issued under); the grant, refresh and ID token models, unused by the client-credentials
  flow, are not in the admin.
"""

from __future__ import annotations

from typing import Any

import oauth2_provider.admin  # noqa: F401  (registers the admins replaced below)
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_variables
from oauth2_provider.admin import AccessTokenAdmin
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from apikeys import services
from apikeys.admin.common import (
    QuietMissingObjectMixin,
    ServiceModelAdmin,
    ShownSecret,
    admin_actor,
    change_url,
    render_shown_once,
)
from apikeys.admin.forms import M2MApplicationAddForm, M2MApplicationChangeForm
from apikeys.exceptions import ApiKeysError

Application = get_application_model()
AccessToken = get_access_token_model()

for model in (
    Application,
    AccessToken,
    get_grant_model(),
    get_id_token_model(),
    get_refresh_token_model(),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(Application)
class M2MApplicationAdmin(ServiceModelAdmin):
    list_display = ("name", "client_id", "granted_scopes", "created")
    search_fields = ("name", "=client_id")
    list_select_related = ("m2m_grant",)
    show_full_result_count = False
    form = M2MApplicationChangeForm
    fields = ("name", "client_id", "scopes", "created", "updated")
    readonly_fields = ("client_id", "created", "updated")

    @admin.display(description="granted scopes")
    def granted_scopes(self, obj: Any) -> str:
        grant = getattr(obj, "m2m_grant", None)
        return " ".join(grant.scope_list) if grant else "—"

    @sensitive_variables("issued")
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Create an application; the response to a successful POST shows its client secret,
        once. Replaces the generic add form, which would take a secret typed by hand."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        posted = request.method == "POST"
        form = M2MApplicationAddForm(request.POST if posted else None)
        if posted and form.is_valid():
            try:
                issued = services.m2m_application_create(
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    actor=admin_actor(request),
                )
            except ApiKeysError as error:
                form.add_error(
                    error.field if error.field in form.fields else None,
                    ValidationError(error.message, code=error.code),
                )
            else:
                application = issued.application
                self.log_addition(request, application, [{"added": {}}])
                url = change_url(application)
                return render_shown_once(
                    request,
                    self,
                    title="Your new M2M application",
                    secrets=[
                        ShownSecret(
                            title=application.name,
                            value=issued.client_secret,
                            label="Client secret",
                            url=url,
                            details=(
                                ("Client id", application.client_id),
                                ("Granted scopes", " ".join(form.cleaned_data["scopes"])),
                            ),
                        )
                    ],
                    notes=[
                        "Exchange the client id and secret for tokens at /oauth2/token "
                        "(grant_type=client_credentials)."
                    ],
                    back_url=url,
                    back_label="I have stored it: go to the application",
                    if_lost=(
                        "If the secret is lost, create a new application with the same "
                        "scopes, move the service to it, then delete this one."
                    ),
                )
        return self.render_add_form(
            request, form, [(None, {"fields": ["name", "scopes"]})], title="Add M2M application"
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Name and scopes are saved together in save_related, as one audited change.
        pass

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change and {"name", "scopes"} & set(form.changed_data):
            services.m2m_application_update(
                application=form.instance,
                name=form.cleaned_data["name"] if "name" in form.changed_data else None,
                scopes=form.cleaned_data["scopes"] if "scopes" in form.changed_data else None,
                actor=admin_actor(request),
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.m2m_application_delete(application=obj, actor=admin_actor(request))


@admin.register(AccessToken)
class ReadOnlyAccessTokenAdmin(QuietMissingObjectMixin, AccessTokenAdmin):
    """Issued tokens, to look at: editing one would change what it may do without a trace.
    To cut an application off at once, delete it (its tokens go with it, audited)."""

    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
