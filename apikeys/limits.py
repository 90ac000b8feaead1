"""Usage limits of a key: their shapes, their checks, and the refill periods. Pure: no
database, no Redis (the database path is in ``apikeys.services.verification``, the Redis
path in ``apikeys.keycache``'s verify script, which computes the same periods in Lua).

- ``ratelimit``: at most ``limit`` valid verifications in any ``duration`` seconds (a
  sliding window: the time of each valid verification is kept for ``duration`` seconds).
- ``credits``: ``remaining`` credits, each valid verification uses ``cost`` of them, never
  below zero; with a ``refill``, ``remaining`` is set back to ``amount`` at 00:00 UTC every
  day or on the 1st of every month. The refill is lazy: the key keeps the *period* its
  ``remaining`` belongs to (a day or a month number, :func:`period_of`), and the first
  verification or read in a later period starts from ``amount``. One writer at a time
  holds the key (its row lock, or the Redis script), so a refill happens exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from apikeys import exceptions as errors

RATELIMIT_MAX_LIMIT: Final = 10_000
RATELIMIT_MAX_DURATION: Final = 86_400
CREDITS_MAX: Final = 1_000_000_000
COST_MAX: Final = 1_000
INTERVALS: Final = ("daily", "monthly")


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` valid verifications in any ``duration`` seconds."""

    limit: int
    duration: int


@dataclass(frozen=True)
class Credits:
    """Credits left, and the optional refill (``interval`` ``daily`` | ``monthly``)."""

    remaining: int
    refill_interval: str = ""
    refill_amount: int | None = None


def period_of(interval: str, when: datetime) -> int:
    """The refill period ``when`` falls in: days since 1970-01-01 (UTC) for ``daily``,
    ``year * 12 + month - 1`` for ``monthly``; 0 without a refill."""
    when = when.astimezone(UTC)
    if interval == "daily":
        return int(when.timestamp() // 86_400)
    if interval == "monthly":
        return when.year * 12 + when.month - 1
    return 0


def _whole(value: Any, *, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise errors.ValidationFailed(
            f"{field} must be a whole number from {low} to {high}.",
            code="INVALID_FIELD",
            field=field,
        )
    return value


def _object(
    value: Any, *, field: str, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.ValidationFailed(
            f"{field} must be an object or null.", code="INVALID_FIELD", field=field
        )
    for name in value:
        if name not in allowed:
            raise errors.ValidationFailed(
                f"Unknown field {str(name)[:64]!r} in {field}.",
                code="UNKNOWN_FIELD",
                field=f"{field}.{str(name)[:64]}",
            )
    for name in required:
        if name not in value:
            raise errors.ValidationFailed(
                f"{field}.{name} is required.", code="INVALID_FIELD", field=f"{field}.{name}"
            )
    return value


def parse_ratelimit(value: Any) -> RateLimit | None:
    """``{"limit": 1-10000, "duration": 1-86400}`` or None (no limit); else ValidationFailed
    naming the field."""
    if value is None or isinstance(value, RateLimit):
        return value
    body = _object(
        value, field="ratelimit", allowed=("limit", "duration"), required=("limit", "duration")
    )
    return RateLimit(
        limit=_whole(body["limit"], field="ratelimit.limit", low=1, high=RATELIMIT_MAX_LIMIT),
        duration=_whole(
            body["duration"], field="ratelimit.duration", low=1, high=RATELIMIT_MAX_DURATION
        ),
    )


def parse_credits(value: Any) -> Credits | None:
    """``{"remaining": 0-1e9, "refill": {"interval": "daily"|"monthly", "amount": 1-1e9}?}``
    or None (no limit); else ValidationFailed naming the field."""
    if value is None or isinstance(value, Credits):
        return value
    body = _object(value, field="credits", allowed=("remaining", "refill"), required=("remaining",))
    remaining = _whole(body["remaining"], field="credits.remaining", low=0, high=CREDITS_MAX)
    refill = body.get("refill")
    if refill is None:
        return Credits(remaining=remaining)
    refill = _object(
        refill,
        field="credits.refill",
        allowed=("interval", "amount"),
        required=("interval", "amount"),
    )
    if refill["interval"] not in INTERVALS or not isinstance(refill["interval"], str):
        raise errors.ValidationFailed(
            "credits.refill.interval must be daily or monthly.",
            code="INVALID_FIELD",
            field="credits.refill.interval",
        )
    return Credits(
        remaining=remaining,
        refill_interval=refill["interval"],
        refill_amount=_whole(
            refill["amount"], field="credits.refill.amount", low=1, high=CREDITS_MAX
        ),
    )


def parse_cost(value: Any) -> int:
    """A verification's ``cost``: a whole number from 0 to 1000 (default 1)."""
    if value is None:
        return 1
    return _whole(value, field="cost", low=0, high=COST_MAX)


def ratelimit_json(limit: int | None, duration: int | None) -> dict[str, int] | None:
    """The key object's ``ratelimit``."""
    if limit is None or duration is None:
        return None
    return {"limit": limit, "duration": duration}


def credits_json(remaining: int | None, interval: str, amount: int | None) -> dict[str, Any] | None:
    """The key object's ``credits``."""
    if remaining is None:
        return None
    return {
        "remaining": remaining,
        "refill": {"interval": interval, "amount": amount} if interval else None,
    }


def credits_now(
    remaining: int | None, interval: str, amount: int | None, period: int | None, now: datetime
) -> int | None:
    """The credits a key has at ``now``: its stored ``remaining``, or the refill ``amount``
    when ``remaining`` belongs to an earlier period (the lazy refill, as a read sees it)."""
    if remaining is None:
        return None
    if interval and amount is not None and (period or 0) < period_of(interval, now):
        return amount
    return remaining


def key_limits_json(key: Any, now: datetime) -> dict[str, Any]:
    """The key object's ``ratelimit`` and ``credits`` (the credits as of ``now``: a
    remaining count of an earlier refill period reads as the refill amount)."""
    return {
        "ratelimit": ratelimit_json(key.ratelimit_limit, key.ratelimit_duration),
        "credits": credits_json(
            credits_now(
                key.credits_remaining,
                key.credits_refill_interval,
                key.credits_refill_amount,
                key.credits_period,
                now,
            ),
            key.credits_refill_interval,
            key.credits_refill_amount,
        ),
    }
