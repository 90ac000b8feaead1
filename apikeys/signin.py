"""Password sign-in, shared by the admin and the portal: one throttle, and sessions that say
which door opened them.

**Throttle.** Failed sign-ins are counted in Django's cache, before the password is checked,
under three keys; past any limit, sign-in is refused without checking the password until the
window (``PORTAL_LOGIN_LOCKOUT_SECONDS``) ends:

- the pair (account, client IP): ``PORTAL_LOGIN_MAX_FAILURES``. Counted first and locked
  first, so a stranger failing under a customer's name locks only themselves out;
- the client IP: ``PORTAL_LOGIN_MAX_FAILURES_PER_IP``, against trying a few passwords on many
  accounts;
- the account, from any IP: ``PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT``, a backstop against
  guessing one password from many addresses (high, so that only such a spread attack reaches
  it; the one-time portal links still sign that person into the portal).

The admin's and the portal's sign-in forms count in the same keys, so failures at one door
count at the other. A correct password clears its pair and takes its attempt back off the IP
and the account.

Why not django-axes: it works by putting its own authentication backend first, which refuses
every ``authenticate()`` call made without a ``request``, among them Django's test
``Client.login()``; two forms need throttling, which this does with the cache the project
already has (Redis in production, so the counts hold across workers).

**Portal-only sessions.** A session that the portal signs in (one-time link or password) is
marked portal-only: the admin site (:mod:`apikeys.admin.sites`) refuses it and asks for its own
password sign-in, even for a staff account. Any other sign-in clears the mark, so the admin's
own login lifts it, and signing in to the portal after the admin sets it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from apikeys import conf
from apikeys.http import client_ip

_PREFIX = "apikeys:signin-failures"
PORTAL_ONLY_SESSION_KEY = "apikeys.portal_only"


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
        """(cache key, limit): the pair's first, then the IP's, then the account's."""
        # Hash the name: cache keys stay short and safe for every backend, and the cache
        # holds no email addresses.
        name = hashlib.sha256(self.username.strip().lower().encode()).hexdigest()
        ip = self.ip or "unknown"
        return [
            (f"{_PREFIX}:pair:{name}:{ip}", conf.get("PORTAL_LOGIN_MAX_FAILURES")),
            (f"{_PREFIX}:ip:{ip}", conf.get("PORTAL_LOGIN_MAX_FAILURES_PER_IP")),
            (f"{_PREFIX}:account:{name}", conf.get("PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT")),
        ]

    def begin(self) -> bool:
        """Count this attempt; False when it is past the limit of any of its keys.

        Raises :class:`ThrottleUnavailable` when the cache is down: the form then refuses
        to check passwords (fails closed) rather than let guessing go unlimited.
        """
        from django.core.cache import cache

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
        except Exception as exc:  # noqa: BLE001 - any cache failure means "cannot count"
            raise ThrottleUnavailable(type(exc).__name__) from exc
        return allowed

    def record_success(self) -> None:
        """A correct password clears the pair's count, and takes this attempt back off the
        IP's and the account's (one good account must not reset an IP trying many others)."""
        from django.core.cache import cache

        pair, *others = self._keys
        try:
            cache.delete(pair[0])
            for key, _limit in others:
                cache.decr(key)
        except Exception:  # noqa: BLE001 - the sign-in itself succeeded; counts expire anyway
            pass


class ThrottledAuthenticationMixin:
    """For a subclass of Django's ``AuthenticationForm``: the attempt is counted by
    :class:`LoginThrottle` before the password is checked, and a locked pair, IP or account
    is refused without hashing the password, so the answer never tells whether the password
    would have been right. ``throttled`` / ``unavailable`` tell the view which status to send
    (:func:`throttled_response`)."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    throttle_messages = {
        "throttled": "Too many failed sign-in attempts. Wait a few minutes and try again.",
        "unavailable": "Sign-in is unavailable for a moment. Try again shortly.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.throttled = False
        self.unavailable = False

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        throttle = LoginThrottle(
            username=username, ip=client_ip(self.request) if self.request else None
        )
        try:
            allowed = throttle.begin()
        except ThrottleUnavailable as exc:
            self.unavailable = True
            raise ValidationError(self.throttle_messages["unavailable"], code="unavailable") from exc
        if not allowed:
            self.throttled = True
            raise ValidationError(self.throttle_messages["throttled"], code="throttled")
        cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        throttle.record_success()
        return cleaned


def throttled_response(response: HttpResponse, form: Any) -> HttpResponse:
    """429 with ``Retry-After`` for a throttled attempt; 503 when the counts are out of reach
    (fail closed: no password is checked without a limit on guessing)."""
    if getattr(form, "throttled", False):
        response.status_code = 429
        response.headers["Retry-After"] = str(conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS"))
    elif getattr(form, "unavailable", False):
        response.status_code = 503
        response.headers["Retry-After"] = "30"
    return response


# --------------------------------------------------------------------------- sessions


def mark_portal_only(request: HttpRequest) -> None:
    """Call right after the portal's ``login()``: this session does not open the admin."""
    request.session[PORTAL_ONLY_SESSION_KEY] = True


def is_portal_only(request: HttpRequest) -> bool:
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(PORTAL_ONLY_SESSION_KEY))


@receiver(user_logged_in, dispatch_uid="apikeys.signin.clear_portal_only")
def clear_portal_only(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    """Every sign-in starts unmarked: the portal marks its own sessions after ``login()``,
    and the admin's password sign-in lifts a portal-only mark for the same account (Django
    keeps a session's data when the same user signs in again)."""
    session = getattr(request, "session", None)
    if session is not None:
        session.pop(PORTAL_ONLY_SESSION_KEY, None)
