"""URLs of the self-serve portal (namespace ``portal``)."""

from __future__ import annotations

from django.urls import path  # noqa: F401

app_name = "portal"

urlpatterns: list = []
