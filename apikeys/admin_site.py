"""The admin site for a project that installs ``portal``: Django's, with two rules added.

- **Only the admin's own password sign-in opens the admin.** A session that the portal
  signed in (a one-time portal link, which an M2M application with ``create:portal_links``
  can mint for any user, or the portal's password form) is portal-only
  (:func:`apikeys.signin.is_portal_only`): here it is sent to the admin's sign-in page, even
  for a staff or superuser account.
- **The admin's sign-in is throttled like the portal's**, in the same counts
  (:mod:`apikeys.signin`): a locked pair, IP or account gets 429 with ``Retry-After``.

Install it by listing :class:`apikeys.apps.AdminConfig` instead of ``django.contrib.admin``
in ``INSTALLED_APPS`` (system check ``apikeys.E201`` says so when the admin site is another).
It brands nothing: a project sets ``site_header`` and friends on a subclass of its own.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse

from apikeys import signin


class AdminSignInForm(signin.ThrottledAuthenticationMixin, AdminAuthenticationForm):
    """Django's admin sign-in form behind the shared sign-in throttle."""


class PortalSafeAdminSite(admin.AdminSite):
    login_form = AdminSignInForm
    portal_session_message = (
        "You are signed in to the portal. The admin asks for its own sign-in with your password."
    )

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and not signin.is_portal_only(request)

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if signin.is_portal_only(request) and request.method == "GET":
            # Django's page would say "you are not authorized"; say why instead. (The view's
            # context outranks the context processors', so ``user`` hides that note.)
            messages.info(request, self.portal_session_message)
            extra_context = {**(extra_context or {}), "user": AnonymousUser()}
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        return signin.throttled_response(response, form)
