"""Password sign-in, shared by the admin and the portal: one throttle, and sessions that say
which door opened them.

**Throttle.** Sign-ins are limited in sliding windows of ``PORTAL_LOGIN_LOCKOUT_SECONDS``
(:mod:`apikeys.ratelimit`: Redis, or the database when there is no Redis, so every worker
shares the counts) under three keys; past any limit, sign-in is refused without checking the
password until the window has room again:

- the pair (account, client IP): ``PORTAL_LOGIN_MAX_FAILURES``. Counted first and locked
  first, so a stranger failing under a customer's name locks only themselves out;
- the client IP: ``PORTAL_LOGIN_MAX_FAILURES_PER_IP``, against trying a few passwords on many
  accounts;
- the account, from any IP: ``PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT``, a backstop against
  guessing one password from many addresses (high, so that only such a spread attack reaches
  it; the one-time portal links still sign that person into the portal).

The admin's and the portal's sign-in forms count in the same keys, so failures at one door
count at the other. A correct password clears its pair's count.

Why not django-axes: it works by putting its own authentication backend first, which refuses
every ``authenticate()`` call made without a ``request``, among them Django's test
``Client.login()``; two forms need throttling, which this does with the limiter the project
already has.

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

from apikeys import conf, ratelimit
from apikeys.http import client_ip

_PREFIX = "apikeys:signin-failures"
PORTAL_ONLY_SESSION_KEY = "apikeys.portal_only"


class ThrottleUnavailable(Exception):
    """The limiter's storage cannot be reached: sign-in must not go unthrottled."""


@dataclass
class LoginThrottle:
    """The limits that apply to one sign-in attempt, in sliding windows
    (:mod:`apikeys.ratelimit`).

    The pair (account, IP) counts an attempt *before* its password is checked
    (:meth:`begin`) and forgets its attempts when one turns out right
    (:meth:`record_success`): counting after the check would let every attempt already in
    flight when the limit is reached through (with many workers, up to limit + workers - 1
    guesses), while counting first lets exactly ``limit`` attempts reach the password check,
    however many arrive at once. The IP's and the account's limits count failures
    (:meth:`record_failure`), so honest sign-ins from one office never use them up.
    """

    username: str
    ip: str | None
    retry_after: int = 0

    def _buckets(self) -> dict[str, tuple[str, int]]:
        # Hash the name: keys stay short and safe for every storage, and hold no emails.
        name = hashlib.sha256(self.username.strip().lower().encode()).hexdigest()
        ip = self.ip or "unknown"
        return {
            "pair": (f"{_PREFIX}:pair:{name}:{ip}", conf.get("PORTAL_LOGIN_MAX_FAILURES")),
            "ip": (f"{_PREFIX}:ip:{ip}", conf.get("PORTAL_LOGIN_MAX_FAILURES_PER_IP")),
            "account": (
                f"{_PREFIX}:account:{name}",
                conf.get("PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT"),
            ),
        }

    def begin(self) -> bool:
        """Count this attempt for its pair; False when the pair, the IP or the account is
        past its limit (then :attr:`retry_after` says for how long).

        Raises :class:`ThrottleUnavailable` when the limiter's storage is down: the form then
        refuses to check passwords (fails closed) rather than let guessing go unlimited.
        """
        window = conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS")
        buckets = self._buckets()
        try:
            for bucket, limit in (buckets["ip"], buckets["account"]):
                if not ratelimit.test(bucket, limit=limit, window=window):
                    self.retry_after = ratelimit.retry_after(bucket, limit=limit, window=window)
                    return False
            bucket, limit = buckets["pair"]
            if not ratelimit.hit(bucket, limit=limit, window=window):
                self.retry_after = ratelimit.retry_after(bucket, limit=limit, window=window)
                return False
        except ratelimit.LimiterUnavailable as exc:
            raise ThrottleUnavailable(str(exc)) from exc
        return True

    def record_failure(self) -> None:
        """A wrong password: it counts against the IP and the account too."""
        window = conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS")
        buckets = self._buckets()
        try:
            for bucket, limit in (buckets["ip"], buckets["account"]):
                ratelimit.hit(bucket, limit=limit, window=window)
        except ratelimit.LimiterUnavailable:
            pass  # begin() already counted the pair; the next attempt fails closed anyway

    def record_success(self) -> None:
        """A correct password forgets the pair's attempts."""
        bucket, limit = self._buckets()["pair"]
        try:
            ratelimit.clear(bucket, limit=limit, window=conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS"))
        except ratelimit.LimiterUnavailable:
            pass  # the sign-in itself succeeded; the attempts leave the window anyway


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
        self.retry_after = 0

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        throttle = LoginThrottle(
            username=username, ip=client_ip(self.request) if self.request else None
        )
        try:
            allowed = throttle.begin()
        except ThrottleUnavailable as exc:
            self.unavailable = True
            raise ValidationError(
                self.throttle_messages["unavailable"], code="unavailable"
            ) from exc
        if not allowed:
            self.throttled = True
            self.retry_after = throttle.retry_after
            raise ValidationError(self.throttle_messages["throttled"], code="throttled")
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError:
            throttle.record_failure()
            raise
        throttle.record_success()
        return cleaned


def throttled_response(response: HttpResponse, form: Any) -> HttpResponse:
    """429 with ``Retry-After`` for a throttled attempt; 503 when the counts are out of reach
    (fail closed: no password is checked without a limit on guessing)."""
    if getattr(form, "throttled", False):
        response.status_code = 429
        seconds = getattr(form, "retry_after", 0) or conf.get("PORTAL_LOGIN_LOCKOUT_SECONDS")
        response.headers["Retry-After"] = str(seconds)
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
