"""List filters of the API key admin: by status as the contract defines it (``expired`` is
an active key past its expiry), by API (keys of a deleted API grouped as "Deleted API"), by
owner type, and by one owner's code or id (a text box: no query to draw the sidebar).

Rule: every filter reads only columns of the key row (the codes copied onto it at issue
time, indexed with the id), never a join, however large the table.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apikeys.admin.common import InputFilter
from apikeys.models import ApiKey


class ApiFilter(admin.RelatedFieldListFilter):
    """By API, where keys of a deleted API (their ``api`` is gone, their ``api_ids`` kept)
    are one choice named for what they are, not the bare empty-value mark."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stubs want a SafeString; a plain str is escaped when shown, which is right for
        # text (and mark_safe is what the security checks forbid).
        self.empty_value_display = "Deleted API"  # type: ignore[assignment]


class StatusFilter(admin.SimpleListFilter):
    """The contract's status: ``expired`` is an active key past its expiry time."""

    title = "status"
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[ApiKey]
    ) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        now = timezone.now()
        value = self.value()
        if value == "active":
            return queryset.filter(status=ApiKey.Status.ACTIVE).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if value == "expired":
            return queryset.filter(status=ApiKey.Status.ACTIVE, expires_at__lte=now)
        if value == "revoked":
            return queryset.filter(status=ApiKey.Status.REVOKED)
        return queryset


class OwnerTypeFilter(admin.SimpleListFilter):
    title = "owner type"
    parameter_name = "owner_type"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[ApiKey]
    ) -> list[tuple[str, str]]:
        return list(ApiKey.Type.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == ApiKey.Type.ORGANIZATION:
            return queryset.exclude(org_code="")
        if self.value() == ApiKey.Type.USER:
            return queryset.exclude(user_public_id="")
        return queryset


class OwnerFilter(InputFilter):
    """One owner's keys, by organization code or user id (what the owner pages link to)."""

    title = "owner (org_… or kp_…)"
    parameter_name = "owner"

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        # The codes copied onto each key at issue time are indexed with the id: one owner's
        # keys come back in id order from the index, however large the table.
        if value.startswith("kp_"):
            return queryset.filter(user_public_id=value)
        return queryset.filter(org_code=value)
