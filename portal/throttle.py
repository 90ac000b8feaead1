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


class ThrottleUnavailable(Exception):
    """The cache that holds the counts cannot be reached: sign-in must not go unthrottled."""


@dataclass(frozen=True)
class LoginThrottle:
    """The failure counters that apply to one sign-in attempt.

    An attempt is counted *before* its password is checked (:meth:`begin`) and uncounted
    when it turns out right (:meth:`record_success`). Counting after the check would let
    every attempt already in flight when the limit is reached through: with many workers,
    up to limit + workers - 1 guesses. Counting first with the cache's atomic increment
    lets exactly ``limit`` attempts reach the password check, however many arrive at once.
    """

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

    def begin(self) -> bool:
        """Count this attempt; False when it is past the limit of its name or its IP.

        Raises :class:`ThrottleUnavailable` when the cache is down: the form then refuses
        to check passwords (fails closed) rather than let guessing go unlimited.
        """
        window = conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS")
        allowed = True
        try:
            for key, limit in self._keys:
                # add() starts the window only if no count exists; incr() is atomic in Redis
                # and keeps the key's expiry, so the window is fixed from the first attempt.
                cache.add(key, 0, timeout=window)
                try:
                    count = cache.incr(key)
                except ValueError:  # expired between add() and incr()
                    cache.set(key, 1, timeout=window)
                    count = 1
                if count > limit:
                    allowed = False
        except ThrottleUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any cache failure means "cannot count"
            raise ThrottleUnavailable(type(exc).__name__) from exc
        return allowed

    def record_success(self) -> None:
        """A correct password clears the name's count, and takes this attempt back off the
        IP's (one good account must not reset an IP that is trying many others)."""
        keys = self._keys
        try:
            cache.delete(keys[0][0])
            if len(keys) > 1:
                cache.decr(keys[1][0])
        except Exception:  # noqa: BLE001 - the sign-in itself succeeded; counts expire anyway
            pass
