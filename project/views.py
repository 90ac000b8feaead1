"""The project's own page: ``/``, what is served here, for a person who opens the address
``make run`` prints."""

from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from apikeys import conf
from portal.http import add_portal_headers


class HomeView(TemplateView):
    template_name = "project/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["platform_name"] = conf.get("PORTAL_PLATFORM_NAME")
        return context

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return add_portal_headers(super().get(request, *args, **kwargs).render())
