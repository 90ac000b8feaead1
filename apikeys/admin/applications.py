"""Admin of machine-to-machine applications (django-oauth-toolkit's ``Application``) and the
Management API scopes granted to them (``M2MGrant``).

django-oauth-toolkit's own admin would let a staff member edit credentials, grant types and
tokens without an audit trail; it is replaced:

- applications are created through ``services.m2m_application_create`` and their client
  secret is shown once (it is stored hashed), renamed, re-scoped, disabled, re-enabled,
  given a new secret (shown once) and deleted through services, each audited;
- disabling, deleting, narrowing the scopes and regenerating the secret apply to tokens
  already issued on their next request (``apikeys.oauth``): a leaked secret is cut off at
  once. Deleting an application takes its tokens with it, although tokens cannot be deleted
  one by one here;
- access tokens can be looked at, not edited (their effective scopes are theirs that the
  application is still granted); the grant, refresh and ID token models, unused by the
  client-credentials flow, are not in the admin;
- every state change is a POST with CSRF from a confirmation page; the one that shows a new
  secret carries a one-time form token, so a reload cannot regenerate it again.
"""

from __future__ import annotations

from typing import Any

import oauth2_provider.admin  # noqa: F401  (registers the admins replaced below)
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
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
from apikeys.formtokens import consume_form_token, issue_form_token
from apikeys.models import M2MGrant

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
    list_display = ("name", "client_id", "status", "granted_scopes", "created")
    search_fields = ("name", "=client_id")
    list_select_related = ("m2m_grant",)
    show_full_result_count = False
    form = M2MApplicationChangeForm
    fields = ("name", "client_id", "scopes", "created", "updated")
    readonly_fields = ("client_id", "created", "updated")

    @admin.display(description="granted scopes")
    def granted_scopes(self, obj: Any) -> str:
        grant = _grant(obj)
        return " ".join(grant.scope_list) if grant else "—"

    @admin.display(description="status")
    def status(self, obj: Any) -> str:
        grant = _grant(obj)
        return "disabled" if grant is not None and not grant.is_active else "active"

    # ------------------------------------------------------------------ disable, enable, secret

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/disable/", wrap(self.disable_view), name=f"{prefix}_disable"),
            path("<path:object_id>/enable/", wrap(self.enable_view), name=f"{prefix}_enable"),
            path(
                "<path:object_id>/regenerate_secret/",
                wrap(self.regenerate_secret_view),
                name=f"{prefix}_regenerate_secret",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        grant = _grant(obj) if obj is not None else None
        extra_context = {
            **(extra_context or {}),
            "can_manage": self.has_change_permission(request, obj),
            "is_disabled": grant is not None and not grant.is_active,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _application_or_404(self, request: HttpRequest, object_id: str) -> Any:
        application = self.get_object(request, unquote(object_id))
        if application is None:
            raise Http404("No M2M application with that id.")
        if not self.has_change_permission(request, application):
            raise PermissionDenied
        return application

    def _confirm(self, request: HttpRequest, application: Any, **extra: Any) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/oauth2_provider/application/confirm.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "app_label": self.opts.app_label,
                "original": application,
                "subtitle": application.name,
                **extra,
            },
        )

    def disable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Disable an application after a confirmation page: no new token, and the tokens it
        holds are refused from their next request."""
        return self._switch(request, object_id, disable=True)

    def enable_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Re-enable a disabled application: its secret and unexpired tokens work again."""
        return self._switch(request, object_id, disable=False)

    def _switch(self, request: HttpRequest, object_id: str, *, disable: bool) -> HttpResponse:
        application = self._application_or_404(request, object_id)
        if request.method == "POST":
            change = (
                services.m2m_application_disable if disable else services.m2m_application_enable
            )
            change(application=application, actor=admin_actor(request))
            done = "disabled" if disable else "re-enabled"
            self.log_change(request, application, done.capitalize() + ".")
            self.message_user(
                request, f"The M2M application “{application.name}” was {done}.", messages.SUCCESS
            )
            return HttpResponseRedirect(change_url(application))
        if disable:
            return self._confirm(
                request,
                application,
                title="Disable M2M application",
                question="Disable",
                consequences=(
                    "It gets no new token, and the tokens it holds are refused from their "
                    "next request. Its secret and scopes are kept: it can be re-enabled."
                ),
                button="Yes, disable it",
            )
        return self._confirm(
            request,
            application,
            title="Enable M2M application",
            question="Re-enable",
            consequences=(
                "Its client secret works again, and so do its tokens that have not expired. "
                "If its secret leaked, regenerate the secret before re-enabling it."
            ),
            button="Yes, re-enable it",
        )

    @sensitive_variables("secret")
    def _show_secret(
        self,
        request: HttpRequest,
        application: Any,
        secret: str,
        *,
        title: str,
        details: tuple[tuple[str, str], ...],
        note: str,
    ) -> HttpResponse:
        """The page that shows an application's client secret, once (on creation and on
        regeneration)."""
        url = change_url(application)
        return render_shown_once(
            request,
            self,
            title=title,
            secrets=[
                ShownSecret(
                    title=application.name,
                    value=secret,
                    label="Client secret",
                    url=url,
                    details=(("Client id", application.client_id), *details),
                )
            ],
            notes=[note],
            back_url=url,
            back_label="I have stored it: go to the application",
            if_lost="If the secret is lost, regenerate it on the application's page.",
        )

    @sensitive_variables("issued")
    def regenerate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Give an application a new client secret, shown once; the old secret and the tokens
        fetched with it stop working at once."""
        application = self._application_or_404(request, object_id)
        error = None
        if request.method == "POST":
            if consume_form_token(request):
                issued = services.m2m_application_regenerate_secret(
                    application=application, actor=admin_actor(request)
                )
                self.log_change(request, application, "Client secret regenerated.")
                return self._show_secret(
                    request,
                    application,
                    issued.client_secret,
                    title="The new client secret",
                    details=(),
                    note=(
                        "The previous secret and every token fetched with it no longer work: "
                        "give the service this secret, and it fetches new tokens."
                    ),
                )
            # A reload of the page that showed the secret: regenerating again would kill the
            # secret just copied.
            error = "This form was already sent: the secret was regenerated then."
        return self._confirm(
            request,
            application,
            title="Regenerate client secret",
            question="Regenerate the client secret of",
            consequences=(
                "The new secret is shown once on the next page. The current secret stops "
                "working at once, and so do the tokens the application holds."
            ),
            button="Regenerate and show the new secret",
            form_token=issue_form_token(request),
            error=error,
        )

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
                return self._show_secret(
                    request,
                    application,
                    issued.client_secret,
                    title="Your new M2M application",
                    details=(("Granted scopes", " ".join(form.cleaned_data["scopes"])),),
                    note=(
                        "Exchange the client id and secret for tokens at /oauth2/token "
                        "(grant_type=client_credentials)."
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

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[str]]:
        # Django asks for the delete permission of every related model the cascade reaches;
        # tokens are never deleted one by one (their admin is read-only), but they go with
        # their application: that is how a leaked secret is cut off.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(str(AccessToken._meta.verbose_name))
        return deleted, counts, perms_needed, protected


def _grant(application: Any) -> M2MGrant | None:
    # The reverse one-to-one raises an AttributeError subclass when there is no grant.
    return getattr(application, "m2m_grant", None)


@admin.register(AccessToken)
class ReadOnlyAccessTokenAdmin(QuietMissingObjectMixin, AccessTokenAdmin):
    """Issued tokens, to look at: editing one would change what it may do without a trace.
    To cut an application off at once, disable or delete it, or regenerate its secret."""

    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
