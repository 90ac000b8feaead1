"""Login throttling for the portal's sign-in form: a small limiter on Django's cache.

Failed sign-ins are counted per account name and per client IP in fixed windows of
``PORTAL_LOGIN_LOCKOUT_SECONDS``. Past ``PORTAL_LOGIN_MAX_FAILURES`` for a name, or
``PORTAL_LOGIN_MAX_FAILURES_PER_IP`` for an IP, sign-in is refused without checking the
password until the window ends; a successful sign-in clears the name's count.

Why not django-axes: it works by putting its own authentication backend first, which
refuses every ``authenticate()`` call made without a ``request``, among them Django's test
``Client.login()`` that the admin's and the API's tests use; and it would lock the admin
too, a choice for the whole project rather than the portal. The portal needs one form
throttled, which this does with the cache the project already has (Redis in production,
so the counts hold across workers).

Counting per name stops guessing one account's password; counting per IP stops trying a
few passwords on many accounts. Locking per name lets someone lock a known account out of
the password form for one window; the one-time portal links from the platform's app still
sign that person in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import cache

from apikeys import conf

_PREFIX = "portal:login-failures"


@dataclass(frozen=True)
class LoginThrottle:
    """The failure counters that apply to one sign-in attempt."""

    username: str
    ip: str | None

    @property
    def _keys(self) -> list[tuple[str, int]]:
        # Hash the name: cache keys stay short and safe for every backend, and the cache
        # holds no email addresses.
        name = hashlib.sha256(self.username.strip().lower().encode()).hexdigest()
        keys = [(f"{_PREFIX}:name:{name}", conf.get("PORTAL_LOGIN_MAX_FAILURES"))]
        if self.ip:
            keys.append((f"{_PREFIX}:ip:{self.ip}", conf.get("PORTAL_LOGIN_MAX_FAILURES_PER_IP")))
        return keys

    def is_locked(self) -> bool:
        """True when this name or this IP has used up its failures for the window."""
        counts = cache.get_many([key for key, _ in self._keys])
        return any(counts.get(key, 0) >= limit for key, limit in self._keys)

    def record_failure(self) -> None:
        window = conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS")
        for key, _ in self._keys:
            # add() starts the window only if no count exists; incr() is atomic in Redis
            # and keeps the key's expiry, so the window is fixed from the first failure.
            cache.add(key, 0, timeout=window)
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.set(key, 1, timeout=window)

    def record_success(self) -> None:
        """A correct password clears the name's count (not the IP's: one good account
        must not reset an IP that is trying many others)."""
        cache.delete(self._keys[0][0])
