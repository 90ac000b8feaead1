"""The ``apikeys-db://`` storage of :mod:`apikeys.ratelimit`: the embedded default's limiter
storage, in the project's own database. Imported (and so registered with ``limits``) when
the first limiter is made."""

from __future__ import annotations

import random
import time
from typing import Any

from django.db import DatabaseError, connection, transaction
from limits.storage import MovingWindowSupport, Storage

from apikeys.ratelimit import MAX_WINDOW_SECONDS


class DatabaseStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage on the project's default database, moving window only.

    ``acquire_entry`` is one transaction that first deletes the key's expired rows: a write,
    so SQLite takes its write lock before the count is read; on PostgreSQL a transaction-level
    advisory lock on the key serialises acquirers of the same key. Either way two processes
    cannot both see "limit - 1" and both add, so the window is exact across processes.
    """

    STORAGE_SCHEME = ["apikeys-db"]

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return DatabaseError

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        from apikeys.models import RateLimitHit

        if amount > limit:
            return False
        now = time.time()
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
            RateLimitHit.objects.filter(key=key, at__lte=now - expiry).delete()
            if RateLimitHit.objects.filter(key=key).count() + amount > limit:
                return False
            RateLimitHit.objects.bulk_create([RateLimitHit(key=key, at=now) for _ in range(amount)])
        if random.random() < 0.01:
            RateLimitHit.objects.filter(at__lte=now - MAX_WINDOW_SECONDS).delete()
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        from apikeys.models import RateLimitHit

        now = time.time()
        times = list(
            RateLimitHit.objects.filter(key=key, at__gt=now - expiry)
            .order_by("-at")
            .values_list("at", flat=True)[:limit]
        )
        return (times[-1], len(times)) if times else (now, 0)

    def clear(self, key: str) -> None:
        from apikeys.models import RateLimitHit

        RateLimitHit.objects.filter(key=key).delete()

    def check(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True

    def reset(self) -> int | None:
        from apikeys.models import RateLimitHit

        return RateLimitHit.objects.all().delete()[0]

    # The counter operations of fixed windows: not offered (only the moving window is used).
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("apikeys-db offers the moving window only")

    def get(self, key: str) -> int:
        raise NotImplementedError("apikeys-db offers the moving window only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("apikeys-db offers the moving window only")


# --------------------------------------------------------------------------- the limiter
