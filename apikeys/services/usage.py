"""Usage history upkeep: hours of ``ApiKeyUsage`` older than the retention are deleted (and
a key's open hour, on its row, that old).

Recording happens in verification (``apikeys.services.verification`` on the database path,
``apikeys.keycache``'s write-back on the Redis path); reading is
``apikeys.selectors.api_key_usage``.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apikeys import conf
from apikeys import exceptions as errors
from apikeys.models import ApiKey, ApiKeyUsage


def api_key_usage_prune(*, retention_days: int | None = None) -> int:
    """Delete the hours of usage history that started more than ``retention_days`` days
    ago (default ``APIKEYS["USAGE_RETENTION_DAYS"]``); the number of hours deleted.
    Maintenance, like ``cleartokens``: not an audit event (no key changes)."""
    days = conf.get("USAGE_RETENTION_DAYS") if retention_days is None else retention_days
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise errors.ValidationFailed(
            "The retention must be a whole number of days, 1 or more.",
            code="INVALID_FIELD",
            field="retention_days",
        )
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = ApiKeyUsage.objects.filter(start__lt=cutoff).delete()
    # A key's open hour (on its row) that old goes too: a key not verified since.
    opened = ApiKey.objects.filter(usage_hour__lt=cutoff).update(
        usage_hour=None, **{f"usage_hour_{outcome}": 0 for outcome in ApiKeyUsage.OUTCOMES}
    )
    return deleted + opened
