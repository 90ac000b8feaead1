"""Reads that cross relations: who may see what, and answers the services need."""

from __future__ import annotations

import operator
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, Max, Sum
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


USAGE_MAX_DAYS = {"day": 366, "hour": 7}


def api_key_usage(*, api_key: Any, start: Any, end: Any, granularity: str) -> list[dict[str, Any]]:
    """A key's usage history from the day ``start`` to the day ``end`` (both dates,
    inclusive, UTC), one bucket per ``granularity`` (``day`` | ``hour``), oldest first,
    zeros included: ``{"start": datetime, "verified", "rate_limited", "usage_exceeded",
    "revoked", "expired", "wrong_audience"}``. Exact: the hours stored (``ApiKeyUsage``)
    plus those counted in Redis and not yet written back (as the key's counts are merged).
    Raises ``UsageRangeTooLarge`` past 366 days (day) or 7 days (hour)."""
    from datetime import UTC, datetime, timedelta

    from apikeys import exceptions as errors
    from apikeys import keycache
    from apikeys.models import ApiKey, ApiKeyUsage

    if granularity not in USAGE_MAX_DAYS:
        raise errors.ValidationFailed(
            "granularity must be day or hour.", code="INVALID_FIELD", field="granularity"
        )
    if end < start:
        raise errors.ValidationFailed(
            "to must not be before from.", code="INVALID_FIELD", field="to"
        )
    days = (end - start).days + 1
    if days > USAGE_MAX_DAYS[granularity]:
        raise errors.UsageRangeTooLarge(
            f"At most {USAGE_MAX_DAYS[granularity]} days by {granularity}.", field="to"
        )
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    after = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
    buckets: dict[datetime, dict[str, Any]] = {}
    moment = first
    while moment < after:
        buckets[moment] = {"start": moment, **{o: 0 for o in ApiKeyUsage.OUTCOMES}}
        moment += step

    def bucket_of(hour: datetime) -> dict[str, Any] | None:
        hour = hour.astimezone(UTC)
        if granularity == "day":
            hour = hour.replace(hour=0)
        return buckets.get(hour)

    # Redis first, then the row's generation and its stored hours in one statement (one
    # snapshot): a generation Redis still held is counted from Redis only if the row has
    # not recorded it, so a write-back running meanwhile is counted once, never missed.
    unwritten = keycache.unwritten_usage(api_key.pk)
    db = connections[DEFAULT_DB_ALIAS]
    keys_table = db.ops.quote_name(ApiKey._meta.db_table)
    usage_table = db.ops.quote_name(ApiKeyUsage._meta.db_table)
    columns = ", ".join(f"u.{c}" for c in ApiKeyUsage.OUTCOMES)
    open_hour = ", ".join(f"k.usage_hour_{c}" for c in ApiKeyUsage.OUTCOMES)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT k.counts_generation, k.usage_hour, {open_hour}, "  # nosec B608
            f"u.start, {columns} FROM {keys_table} k "
            f"LEFT JOIN {usage_table} u ON u.api_key_id = k.id AND u.start >= %s "
            "AND u.start < %s WHERE k.id = %s",
            [
                db.ops.adapt_datetimefield_value(first),
                db.ops.adapt_datetimefield_value(after),
                api_key.pk,
            ],
        )
        rows = cursor.fetchall()
    generation = int(rows[0][0]) if rows else 0
    width = len(ApiKeyUsage.OUTCOMES)
    # The key's open hour, written on its row (ApiKey.usage_hour), then the closed hours.
    hour = keycache.aware_datetime(rows[0][1]) if rows else None
    bucket = bucket_of(hour) if hour is not None else None
    if bucket is not None:
        for outcome, n in zip(ApiKeyUsage.OUTCOMES, rows[0][2 : 2 + width], strict=True):
            bucket[outcome] += int(n)
    for row in rows:
        stored = row[2 + width :]
        if stored[0] is None:
            continue
        bucket = bucket_of(keycache.aware_datetime(stored[0]) or first)
        if bucket is not None:
            for outcome, n in zip(ApiKeyUsage.OUTCOMES, stored[1:], strict=True):
                bucket[outcome] += int(n)
    for gen, hour, outcome, n in unwritten:
        if gen <= generation:
            continue
        bucket = bucket_of(hour)
        if bucket is not None:
            bucket[outcome] += n
    return list(buckets.values())


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
_OPEN_REFUSED = reduce(
    operator.add,
    (
        F(f"api_key__usage_hour_{outcome}")
        for outcome in ApiKeyUsage.OUTCOMES
        if outcome != "verified"
    ),
)


def api_key_usage_daily(
    *, api_key_ids: Collection[str], days: int = USAGE_CHART_DAYS, today: date | None = None
) -> dict[str, UsageSeries]:
    """The last ``days`` UTC days (today included) of each key in ``api_key_ids``, valid vs
    refused per day: one query for all the keys, however many (a page of the portal's key
    list costs the same for 1 key or 50). Keys without any usage get a series of zeros.

    The caller decides which keys: pass only ids of keys its reader may see (the portal's
    come from ``ApiKey.objects.visible_to``).

    Exact, as :func:`api_key_usage` is: the hours stored (``ApiKeyUsage``) plus those
    counted in Redis and not yet written back (one pipelined Redis round trip for the
    page), Redis read first, then the rows with their key's written generation in the same
    statement, so that a write-back running meanwhile is counted once, never missed.
    """
    from apikeys import keycache

    today = today or timezone.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    ids = list(dict.fromkeys(api_key_ids))
    if not ids:
        return {}
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    unwritten = keycache.unwritten_usage_many(ids)
    rows = (
        ApiKeyUsage.objects.filter(api_key_id__in=ids, start__gte=start, start__lt=end)
        .annotate(day=TruncDate("start", tzinfo=UTC))
        .values("api_key_id", "day")
        .annotate(
            valid=Sum("verified"),
            refused=Sum(_REFUSED),
            written=Max("api_key__counts_generation"),
            # The key's open hour, on its row (the same for every day of the key): an
            # ApiKeyUsage row of that hour always exists, so the hour's day is among these.
            open_hour=Max("api_key__usage_hour"),
            open_valid=Max("api_key__usage_hour_verified"),
            open_refused=Max(_OPEN_REFUSED),
        )
        .order_by()
    )
    counts: dict[tuple[str, date], list[int]] = {}
    # A key without rows in the range has had none of these hours written back: every
    # generation Redis holds for it counts.
    written: dict[str, int] = {}
    for row in rows:
        pair = [row["valid"] or 0, row["refused"] or 0]
        if row["open_hour"] is not None and row["open_hour"].astimezone(UTC).date() == row["day"]:
            pair[0] += row["open_valid"] or 0
            pair[1] += row["open_refused"] or 0
        counts[(row["api_key_id"], row["day"])] = pair
        written[row["api_key_id"]] = int(row["written"] or 0)
    for key_id, entries in unwritten.items():
        for gen, hour, outcome, n in entries:
            day = hour.astimezone(UTC).date()
            if gen <= written.get(key_id, -1) or not first <= day <= today:
                continue
            pair = counts.setdefault((key_id, day), [0, 0])
            pair[0 if outcome == "verified" else 1] += n
    return {
        key_id: UsageSeries(
            tuple(
                DailyUsage(day, *counts.get((key_id, day), (0, 0)))
                for day in (first + timedelta(days=n) for n in range(days))
            )
        )
        for key_id in ids
    }
