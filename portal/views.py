"""The portal's pages: customers see, create, rotate and revoke their own keys and, with the
right role, their organizations' keys.

Rules every view here follows:

- every key is fetched through ``ApiKey.objects.visible_to(request.user)``, so another
  user's or another organization's key id is a 404 (not a 403 that would confirm it exists);
- an organization's pages need ``read:org:authentication``; creating, rotating and revoking
  need ``write:org:authentication``, checked on the server whether or not a button shows;
- state changes only by POST, with Django's CSRF check; every change goes through
  ``apikeys.services`` with the portal user as actor, so it lands in the audit trail;
- a new secret is rendered in the POST response that created it and nowhere else (not the
  session, messages, database, logs or a URL), with ``Cache-Control: no-store``; every
  other POST redirects.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views import View
from django.views.generic import ListView, TemplateView

from apikeys import conf, formtokens, limits, selectors, services
from apikeys import exceptions as errors
from apikeys.formtokens import consume_form_token, issue_form_token
from apikeys.http import client_ip
from apikeys.limitsforms import LIMIT_FIELD_FOR_ERROR, ApiKeyLimitsForm
from apikeys.models import ApiKey, Organization
from apikeys.signin import mark_portal_only, throttled_response
from portal import services as portal_services
from portal.exceptions import PortalLinkError
from portal.forms import ApiKeyCreateForm, ApiKeyRotateForm, PortalAuthenticationForm
from portal.http import add_no_store_headers, add_portal_headers
from portal.models import PortalLink, SelfServeSettings
from portal.selectors import api_keys_for_list, key_policy_notes, organizations_readable_by

RETURN_URL_SESSION_KEY = "portal.return_url"
FORM_TOKENS_SESSION_KEY = formtokens.SESSION_KEY
KEYS_PER_PAGE = 50


class SelfServeDisabled(Exception):
    """The self-serve switch for this kind of key (``user`` / ``organization``) is off."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# --------------------------------------------------------------------------- shared pieces


def self_serve_settings(request: HttpRequest) -> SelfServeSettings:
    """The self-serve switches, read once per request."""
    cached = getattr(request, "_portal_self_serve", None)
    if cached is None:
        cached = SelfServeSettings.load()
        request._portal_self_serve = cached  # type: ignore[attr-defined]
    return cached


def layout_context(request: HttpRequest) -> dict[str, Any]:
    """What the layout needs on every page: the platform's name, the navigation and the
    "Back to app" link. A constant number of queries, whatever the user's keys."""
    context: dict[str, Any] = {
        "platform_name": conf.get("PORTAL_PLATFORM_NAME"),
        "show_nav": False,
    }
    if request.user.is_authenticated:
        switches = self_serve_settings(request)
        organizations = (
            list(organizations_readable_by(request.user))
            if switches.organization_keys_enabled
            else []
        )
        context.update(
            self_serve=switches,
            nav_organizations=organizations,
            show_nav=switches.user_keys_enabled or bool(organizations),
            return_url=request.session.get(RETURN_URL_SESSION_KEY, ""),
        )
    return context


def actor_for(request: HttpRequest) -> services.Actor:
    return services.Actor(user=request.user, ip=client_ip(request))


class PortalMixin:
    """Base of every portal view: layout context, security headers, and refusals rendered
    as portal pages (404 for what the user may not see, 403 for what they may see but not
    change, and a "turned off" page for a self-serve kind that is switched off)."""

    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        except Http404:
            response = render_refusal(request, "portal/not_found.html", status=404)
        except PermissionDenied:
            response = render_refusal(request, "portal/forbidden.html", status=403)
        except SelfServeDisabled as exc:
            # 404: a switched-off kind of page does not exist for the customer.
            response = render_refusal(request, "portal/disabled.html", status=404, kind=exc.kind)
        return add_portal_headers(response)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context.update(layout_context(self.request))
        return context


def render_refusal(
    request: HttpRequest, template: str, *, status: int, **extra: Any
) -> HttpResponse:
    response = TemplateResponse(request, template, {**layout_context(request), **extra})
    response.status_code = status
    return response.render()


class PortalLoginRequiredMixin(PortalMixin, LoginRequiredMixin):
    login_url = reverse_lazy("portal:login")


class OwnerMixin(PortalLoginRequiredMixin):
    """Pages about one owner's keys: the signed-in user's (no ``org_code`` in the URL) or
    one organization's (``org_code``), with what the user may do there."""

    organization: Organization | None
    can_write: bool

    def resolve_owner(self) -> None:
        user = self.request.user
        switches = self_serve_settings(self.request)
        org_code = self.kwargs.get("org_code")  # type: ignore[attr-defined]
        if org_code is None:
            if not switches.user_keys_enabled:
                raise SelfServeDisabled("user")
            self.organization = None
            self.can_write = True
            return
        if not switches.organization_keys_enabled:
            raise SelfServeDisabled("organization")
        organization = get_object_or_404(Organization, code=org_code)
        # Without read the organization's pages do not exist for this user: a 404, the
        # same as for an organization code that does not exist.
        if not selectors.can_read_org_keys(user=user, organization=organization):
            raise Http404
        self.organization = organization
        self.can_write = selectors.can_write_org_keys(user=user, organization=organization)

    def require_write(self) -> None:
        if not self.can_write:
            raise PermissionDenied

    def list_url(self) -> str:
        if self.organization is not None:
            return reverse("portal:org-keys", kwargs={"org_code": self.organization.code})
        return reverse("portal:user-keys")

    def create_url(self) -> str:
        if self.organization is not None:
            return reverse("portal:org-key-create", kwargs={"org_code": self.organization.code})
        return reverse("portal:user-key-create")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            organization=self.organization,
            can_write=self.can_write,
            list_url=self.list_url(),
            create_url=self.create_url(),
            nav_current=self.organization.code if self.organization else "user",
        )
        return context


class ApiKeyMixin(PortalLoginRequiredMixin):
    """Pages about one key, fetched through ``visible_to``: anything else is a 404."""

    api_key: ApiKey
    organization: Organization | None
    can_write: bool

    def resolve_key(self) -> None:
        user = self.request.user
        api_key = (
            ApiKey.objects.visible_to(user)
            .select_related("api", "organization")
            .filter(pk=self.kwargs["key_id"])  # type: ignore[attr-defined]
            .first()
        )
        if api_key is None:
            raise Http404
        switches = self_serve_settings(self.request)
        organization = api_key.organization  # fetched by select_related: no query
        if organization is not None:
            if not switches.organization_keys_enabled:
                raise SelfServeDisabled("organization")
            self.can_write = selectors.can_write_org_keys(user=user, organization=organization)
        else:
            if not switches.user_keys_enabled:
                raise SelfServeDisabled("user")
            self.can_write = api_key.user_id == user.pk
        self.api_key = api_key
        self.organization = organization

    def require_write(self) -> None:
        if not self.can_write:
            raise PermissionDenied

    def detail_url(self) -> str:
        return reverse("portal:apikey-detail", kwargs={"key_id": self.api_key.pk})

    def list_url(self) -> str:
        if self.organization is not None:
            return reverse("portal:org-keys", kwargs={"org_code": self.organization.code})
        return reverse("portal:user-keys")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            api_key=self.api_key,
            organization=self.organization,
            can_write=self.can_write,
            list_url=self.list_url(),
            detail_url=self.detail_url(),
            nav_current=self.organization.code if self.organization else "user",
        )
        return context


def render_secret(
    request: HttpRequest, *, issued: services.IssuedKey, rotated: bool, context: dict[str, Any]
) -> HttpResponse:
    """The shown-once page, as the response to the POST that made the secret.

    The plaintext goes into this one response body and nowhere else; ``no-store`` keeps it
    out of the browser's cache and history snapshots.
    """
    response = TemplateResponse(
        request,
        "portal/key_secret.html",
        {
            **context,
            "api_key": issued.api_key,
            "secret": issued.plaintext,
            "rotated": rotated,
            "detail_url": reverse("portal:apikey-detail", kwargs={"key_id": issued.api_key.pk}),
        },
    )
    return add_no_store_headers(response)


# --------------------------------------------------------------------------- sign-in


class PortalLoginView(PortalMixin, LoginView):
    """Django's sign-in view (Argon2-hashed passwords) behind the login throttle."""

    template_name = "portal/login.html"
    authentication_form = PortalAuthenticationForm
    redirect_authenticated_user = True
    next_page = "portal:home"

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        # A portal sign-in never opens the admin, whoever the account is.
        mark_portal_only(self.request)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        return throttled_response(super().form_invalid(form), form)


class PortalLogoutView(PortalMixin, LogoutView):
    """Sign out (POST only, as Django requires) and land on the sign-in page."""

    next_page = "portal:login"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have signed out.")
        return response


class PortalLinkView(PortalMixin, TemplateView):
    """A one-time portal link: GET shows a confirmation, POST signs in.

    Why not sign in on GET: mail scanners and chat apps fetch links to preview them, and
    would use up the one-time link before the person clicks it (or sign a bot in). And a
    GET that logs in is a login-CSRF hole: a page could make a victim's browser load a link
    minted for the attacker's account and silently swap the victim into it. Here the GET
    changes nothing and names the account, and only a same-site POST carrying the CSRF
    token (so from this page) uses the link.
    """

    template_name = "portal/link_confirm.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            link = portal_services.portal_link_check(token=kwargs["token"])
        except PortalLinkError as exc:
            return self.refuse(exc)
        context = self.get_context_data(
            link=link,
            switching_account=(request.user.is_authenticated and request.user.pk != link.user_id),
        )
        return add_no_store_headers(self.render_to_response(context))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            redeemed = portal_services.portal_link_redeem(
                token=kwargs["token"], ip=client_ip(request)
            )
        except PortalLinkError as exc:
            return self.refuse(exc)
        # login() rotates the session key (no session fixation) and flushes the session
        # of another user who was signed in here; only then is the return URL stored.
        auth_login(request, redeemed.user, backend=settings.AUTHENTICATION_BACKENDS[0])
        # The link signs into the portal only: the admin asks a staff account for its own
        # password sign-in (the link may have been minted by any M2M application holding
        # create:portal_links).
        mark_portal_only(request)
        if redeemed.return_url:
            request.session[RETURN_URL_SESSION_KEY] = redeemed.return_url
        else:
            request.session.pop(RETURN_URL_SESSION_KEY, None)
        if (
            redeemed.sub_nav == PortalLink.SubNav.ORGANIZATION_API_KEYS
            and redeemed.organization is not None
        ):
            target = reverse("portal:org-keys", kwargs={"org_code": redeemed.organization.code})
        else:
            target = reverse("portal:user-keys")
        return add_no_store_headers(HttpResponseRedirect(target))

    def refuse(self, exc: PortalLinkError) -> HttpResponse:
        # The code rides along as the message's extra tag: tests (and styling) key on it.
        messages.error(self.request, exc.message, extra_tags=exc.code)
        return add_no_store_headers(HttpResponseRedirect(reverse("portal:login")))


# --------------------------------------------------------------------------- pages


class HomeView(PortalLoginRequiredMixin, TemplateView):
    """/portal/: the user's keys, else their first organization's, else says why not."""

    template_name = "portal/home.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        switches = self_serve_settings(request)
        if not switches.any_enabled:
            # The portal's front page exists and says so (200); only the pages of a
            # switched-off kind are gone (404).
            return render_refusal(request, "portal/disabled.html", status=200, kind="all")
        if switches.user_keys_enabled:
            return redirect("portal:user-keys")
        first = organizations_readable_by(request.user).first()
        if first is not None:
            return redirect("portal:org-keys", org_code=first.code)
        return super().get(request, *args, **kwargs)


class ApiKeyListView(OwnerMixin, ListView):
    """The keys of the user, or of one organization: newest first, 50 a page."""

    template_name = "portal/key_list.html"
    context_object_name = "api_keys"
    paginate_by = KEYS_PER_PAGE

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_owner()
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return api_keys_for_list(user=self.request.user, organization=self.organization)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """Each key of the page with its last 30 days (one query for the page), and their
        sum for the chart above the list."""
        context = super().get_context_data(**kwargs)
        api_keys = list(context["api_keys"])
        usage = selectors.api_key_usage_daily(api_key_ids=[key.pk for key in api_keys])
        for key in api_keys:
            key.last_30_days = usage[key.pk]  # shown by the row's usage bar
        context.update(
            api_keys=api_keys,
            object_list=api_keys,
            usage_total=selectors.UsageSeries.combined(list(usage.values())) if usage else None,
            usage_largest=max((series.total for series in usage.values()), default=0),
        )
        return context


class ApiKeyCreateView(OwnerMixin, TemplateView):
    """The create form; its POST issues the key and answers with the shown-once page."""

    template_name = "portal/key_create.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_owner()
        self.require_write()
        return self.render_form(ApiKeyCreateForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_owner()
        self.require_write()
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            return self.render_form(form, status=400)
        if not consume_form_token(request):
            messages.warning(
                request,
                "That form had already been sent, so no second key was created. A key's "
                "secret is shown only once; if it was lost, rotate the key.",
            )
            return redirect(self.list_url())
        try:
            issued = services.api_key_issue(
                name=form.cleaned_data["name"],
                api=form.cleaned_data["api"],
                scopes=list(form.cleaned_data["scopes"]),
                organization=self.organization,
                user=None if self.organization is not None else request.user,
                ratelimit=form.limits()[0],
                credits=form.limits()[1],
                actor=actor_for(request),
            )
        except errors.ApiKeysError as exc:
            field = {"scope_ids": "scopes", **LIMIT_FIELD_FOR_ERROR}.get(exc.field or "", exc.field)
            form.add_error(field if field in form.fields else None, exc.message)
            return self.render_form(form, status=400)
        return render_secret(request, issued=issued, rotated=False, context=self.get_context_data())

    def render_form(self, form: ApiKeyCreateForm, status: int = 200) -> HttpResponse:
        response = self.render_to_response(
            self.get_context_data(
                form=form,
                form_token=issue_form_token(self.request),
                policy_notes=key_policy_notes(
                    user=self.request.user, organization=self.organization
                ),
            )
        )
        response.status_code = status
        return response


class ApiKeyDetailView(ApiKeyMixin, TemplateView):
    """One key: its facts and its last 30 days of verifications."""

    template_name = "portal/key_detail.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        key = self.api_key
        credits_left = limits.credits_now(
            key.credits_remaining,
            key.credits_refill_interval,
            key.credits_refill_amount,
            key.credits_period,
            timezone.now(),
        )
        context = super().get_context_data(credits_left=credits_left, **kwargs)
        # The key came through visible_to (resolve_key): its usage is the reader's to see.
        context["usage"] = selectors.api_key_usage_daily(api_key_ids=[self.api_key.pk])[
            self.api_key.pk
        ]
        return context


class ApiKeyLimitsView(ApiKeyMixin, TemplateView):
    """Change an active key's usage limits (owners with write access)."""

    template_name = "portal/key_limits.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        if self.api_key.status == ApiKey.Status.REVOKED:
            return self.refuse_revoked()
        return self.render_form(ApiKeyLimitsForm(initial=ApiKeyLimitsForm.initial_of(self.api_key)))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        form = ApiKeyLimitsForm(request.POST)
        if not form.is_valid():
            return self.render_form(form, status=400)
        ratelimit, credits = form.limits()
        try:
            services.api_key_update(
                api_key=self.api_key, ratelimit=ratelimit, credits=credits, actor=actor_for(request)
            )
        except errors.ApiKeyRevoked:
            return self.refuse_revoked()
        except errors.ApiKeysError as exc:
            field = LIMIT_FIELD_FOR_ERROR.get(exc.field or "")
            form.add_error(field, exc.message)
            return self.render_form(form, status=400)
        messages.success(request, f"The usage limits of “{self.api_key.name}” are saved.")
        return redirect(self.detail_url())

    def refuse_revoked(self) -> HttpResponse:
        messages.error(self.request, "A revoked key's limits cannot be changed.")
        return redirect(self.detail_url())

    def render_form(self, form: ApiKeyLimitsForm, status: int = 200) -> HttpResponse:
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = status
        return response


class ApiKeyRotateView(ApiKeyMixin, TemplateView):
    """Confirm a rotation (GET); rotate and show the new secret once (POST)."""

    template_name = "portal/key_rotate.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        if self.api_key.status == ApiKey.Status.REVOKED:
            return self.refuse_revoked()
        return self.render_form(ApiKeyRotateForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        form = ApiKeyRotateForm(request.POST)
        if not form.is_valid():
            return self.render_form(form, status=400)
        if not consume_form_token(request):
            messages.warning(
                request,
                "That form had already been sent, so the key was not rotated again. If the "
                "new secret was lost, rotate the key once more.",
            )
            return redirect(self.detail_url())
        try:
            issued = services.api_key_rotate(
                api_key=self.api_key,
                grace_seconds=form.cleaned_data["grace_seconds"],
                actor=actor_for(request),
            )
        except errors.ApiKeyRevoked:
            return self.refuse_revoked()
        except errors.ApiKeysError as exc:
            form.add_error(None, exc.message)
            return self.render_form(form, status=400)
        return render_secret(request, issued=issued, rotated=True, context=self.get_context_data())

    def refuse_revoked(self) -> HttpResponse:
        messages.error(self.request, "A revoked key cannot be rotated. Create a new key instead.")
        return redirect(self.detail_url())

    def render_form(self, form: ApiKeyRotateForm, status: int = 200) -> HttpResponse:
        response = self.render_to_response(
            self.get_context_data(form=form, form_token=issue_form_token(self.request))
        )
        response.status_code = status
        return response


class ApiKeyRevokeView(ApiKeyMixin, TemplateView):
    """Confirm a revocation (GET); revoke and go back to the key (POST)."""

    template_name = "portal/key_revoke.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        if self.api_key.status == ApiKey.Status.REVOKED:
            messages.info(request, "This key is already revoked.")
            return redirect(self.detail_url())
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.resolve_key()
        self.require_write()
        services.api_key_revoke(api_key=self.api_key, actor=actor_for(request))
        messages.success(
            request, f"“{self.api_key.name}” is revoked. It no longer verifies, anywhere."
        )
        return redirect(self.detail_url())


class PortalNotFoundView(PortalMixin, View):
    """Any other path under /portal/: the portal's own 404 page."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return add_portal_headers(render_refusal(request, "portal/not_found.html", status=404))
