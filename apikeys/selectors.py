"""Reads that cross relations: who may see what, and answers the services need."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from apikeys.models import Membership, Organization, SystemPermission


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
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT k.counts_generation, u.start, {columns} FROM {keys_table} k "  # nosec B608
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
    for row in rows:
        if row[1] is None:
            continue
        bucket = bucket_of(keycache.aware_datetime(row[1]) or first)
        if bucket is not None:
            for outcome, n in zip(ApiKeyUsage.OUTCOMES, row[2:], strict=True):
                bucket[outcome] += int(n)
    for gen, hour, outcome, n in unwritten:
        if gen <= generation:
            continue
        bucket = bucket_of(hour)
        if bucket is not None:
            bucket[outcome] += n
    return list(buckets.values())
