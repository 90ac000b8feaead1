"""Helpers of the admin tests: reading what a page shows."""

from __future__ import annotations

import re
from typing import Any

# The secret on the shown-once page: `<input ... class="apikeys-secret" value="k_live_…"`.
SECRET_INPUT = re.compile(r'class="apikeys-secret" value="([^"]+)"')


def shown_secrets(response: Any) -> list[str]:
    """The secrets a shown-once page displays."""
    return SECRET_INPUT.findall(response.content.decode())


def form_errors(response: Any) -> dict[str, list[str]]:
    """``{field: [error codes]}`` of the admin form a response re-displays."""
    form = response.context["adminform"].form
    return {name: [e.code for e in errors] for name, errors in form.errors.as_data().items()}


def admin_url(name: str, pk: Any = None) -> str:
    """``admin_url("apikey_change", key.pk)``: an admin URL with the primary key quoted as the
    admin quotes it in its own links."""
    from django.contrib.admin.utils import quote
    from django.urls import reverse

    return reverse(f"admin:apikeys_{name}", args=[] if pk is None else [quote(pk)])


def action_names(response: Any) -> list[str]:
    """The list actions a change-list page offers (none: no action form at all)."""
    form = response.context["action_form"]
    return [] if form is None else [value for value, _ in form.fields["action"].choices if value]
