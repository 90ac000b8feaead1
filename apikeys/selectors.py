"""Reads that cross relations: who may see what, and answers the services need."""

from __future__ import annotations

import operator
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import Any

from django.db.models import F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apikeys.models import ApiKeyUsage, Membership, Organization, SystemPermission


def organization_permissions(*, user: Any, organization: Organization) -> set[str]:
    """The system permission keys ``user``'s roles grant in ``organization``."""
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(
        Membership.objects.filter(user=user, organization=organization).values_list(
            "roles__system_permissions__key", flat=True
        )
    ) - {None}


def can_read_org_keys(*, user: Any, organization: Organization) -> bool:
    """Seeing an organization's keys needs ``read:org:authentication``."""
    return SystemPermission.READ_ORG_AUTHENTICATION in organization_permissions(
        user=user, organization=organization
    )


def can_write_org_keys(*, user: Any, organization: Organization) -> bool:
    """Creating, rotating and revoking them needs ``write:org:authentication`` as well as
    ``read`` (every write acts on keys the member must be able to see)."""
    perms = organization_permissions(user=user, organization=organization)
    return {
        SystemPermission.READ_ORG_AUTHENTICATION,
        SystemPermission.WRITE_ORG_AUTHENTICATION,
    } <= perms


# --------------------------------------------------------------------------- usage charts


@dataclass(frozen=True)
class DailyUsage:
    """One UTC day of one key: verifications that passed (``valid``, the ``verified``
    outcome) and those refused for any reason (every other outcome, summed)."""

    day: date
    valid: int = 0
    refused: int = 0

    @property
    def total(self) -> int:
        return self.valid + self.refused


@dataclass(frozen=True)
class UsageSeries:
    """A run of consecutive UTC days, oldest first, ending today (a day without a row is a
    zero, never a gap): what the portal's and the admin's usage charts draw."""

    days: tuple[DailyUsage, ...]

    @property
    def valid(self) -> int:
        return sum(d.valid for d in self.days)

    @property
    def refused(self) -> int:
        return sum(d.refused for d in self.days)

    @property
    def total(self) -> int:
        return self.valid + self.refused

    @classmethod
    def combined(cls, series: Collection[UsageSeries]) -> UsageSeries:
        """Several keys' series (at least one, all over the same days) summed day by day."""
        days = next(iter(series)).days
        return cls(
            tuple(
                DailyUsage(
                    day.day,
                    sum(one.days[index].valid for one in series),
                    sum(one.days[index].refused for one in series),
                )
                for index, day in enumerate(days)
            )
        )


USAGE_CHART_DAYS = 30

# Every outcome but ``verified`` is a refusal; summed in the database.
_REFUSED = reduce(
    operator.add, (F(outcome) for outcome in ApiKeyUsage.OUTCOMES if outcome != "verified")
)


def api_key_usage_daily(
    *, api_key_ids: Collection[str], days: int = USAGE_CHART_DAYS, today: date | None = None
) -> dict[str, UsageSeries]:
    """The last ``days`` UTC days (today included) of each key in ``api_key_ids``, valid vs
    refused per day: one query for all the keys, however many (a page of the portal's key
    list costs the same for 1 key or 50). Keys without any usage get a series of zeros.

    The caller decides which keys: pass only ids of keys its reader may see (the portal's
    come from ``ApiKey.objects.visible_to``).

    Source: the ``ApiKeyUsage`` rows as written to the database. INTEGRATION: the exact
    selector ``api_key_usage(*, api_key, start, end, granularity)`` (built in parallel)
    also merges counts not yet written back from Redis; at merge this function's source
    switches to it (keeping one read per page, not one per key), and its callers stay as
    they are.
    """
    today = today or timezone.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    ids = list(dict.fromkeys(api_key_ids))
    if not ids:
        return {}
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    rows = (
        ApiKeyUsage.objects.filter(api_key_id__in=ids, start__gte=start, start__lt=end)
        .annotate(day=TruncDate("start", tzinfo=UTC))
        .values("api_key_id", "day")
        .annotate(valid=Sum("verified"), refused=Sum(_REFUSED))
        .order_by()
    )
    counts: dict[tuple[str, date], tuple[int, int]] = {
        (row["api_key_id"], row["day"]): (row["valid"] or 0, row["refused"] or 0) for row in rows
    }
    return {
        key_id: UsageSeries(
            tuple(
                DailyUsage(day, *counts.get((key_id, day), (0, 0)))
                for day in (first + timedelta(days=n) for n in range(days))
            )
        )
        for key_id in ids
    }
