"""The app's own settings: one ``APIKEYS`` dict in Django settings, read at use.

Values are looked up on every access (never cached at import), so ``override_settings``
in tests and settings reloads behave as expected. ``apikeys/checks.py`` rejects bad values
at start-up; a knob without a rule of its own there is held to the kind of its default (a
whole number of 0 or more, True/False, text, a list of text).

Every knob, with its default:

- ``HASHING_SECRET`` (required; default ``None``): secret of the keyed digest
  (HMAC-SHA-256) of every key, at least 32 characters, not ``SECRET_KEY``. Changing it
  invalidates every issued key.
- ``TRUST_X_FORWARDED_FOR`` (``False``): take the caller's IP from the last
  ``X-Forwarded-For`` entry (only behind one reverse proxy you control).
- ``MAX_ROTATION_GRACE_SECONDS`` (``604800``, 7 days): longest grace period a rotation may
  keep the previous secret valid for.
- ``VERIFY_FAILURE_LIMIT`` (``300``) and ``VERIFY_FAILURE_WINDOW`` (``60`` seconds): failed
  verifications one M2M application may make per window before further failures answer
  429; ``0`` switches the limit off.
- ``RATELIMIT_STORAGE`` (``""``): where the sliding-window limits count, a ``limits``
  storage URI; empty means the default cache's Redis if it is one, else the database.
- ``TOKEN_FAILURE_LIMIT`` (``10``), ``TOKEN_FAILURE_LIMIT_PER_IP`` (``50``) and
  ``TOKEN_FAILURE_WINDOW`` (``60`` seconds): failed client authentications at
  ``/oauth2/token`` allowed per ``client_id`` and per client IP within the window; past
  either, further failures answer 429 (a correct secret still gets its token); ``0``
  switches a limit off.
- ``AUTHENTICATION_FAILURE_LIMIT`` (``300``) and ``AUTHENTICATION_FAILURE_WINDOW`` (``60``
  seconds): keys refused by ``ApiKeyAuthentication`` (checked in-process) one client IP may
  present per window before further refusals answer 429; ``0`` switches the limit off.
- ``MANAGEMENT_API_AUDIENCE`` (``None``): the audience an M2M token request may name;
  ``None`` means ``<scheme>://<host>/api`` of the request.
- ``M2M_TOKEN_CACHE_SECONDS`` (``60``): with Redis as the default cache, how long a worker
  may keep an M2M access token it has checked (``apikeys.tokencache``); every change to the
  application is honoured at once regardless, through Redis. ``0`` switches the cache off.
- ``COUNTS_WRITE_BACK_INTERVAL`` (``1`` second, from 0.05 to 60): with Redis as the default
  cache, verifications are counted in Redis and written back to the database in one batch
  this often (``apikeys.keycache``); a Redis that loses its memory loses at most this much
  of counts (plus a write-back in progress). Reads always add the counts not yet written.
- ``COUNTS_WRITE_BACK_THREAD`` (``True``): each worker process runs the write-back in a
  daemon thread (one of them at a time, through a Redis lock); ``False`` leaves it to
  ``manage.py apikeys_write_back`` (run it from cron or a loop).
- ``USAGE_RETENTION_DAYS`` (``400``): days of usage history (``ApiKeyUsage``, one row per
  key and hour) kept; ``manage.py apikeys_prune_usage`` deletes older hours (run it daily).
- ``PORTAL_RETURN_URL_HOSTS`` (``[]``): hosts a portal link's ``return_url`` may point at
  (``"app.example.com"``, or ``".example.com"`` for a domain and its subdomains).
- ``PORTAL_PUBLIC_URL`` (``None``): scheme and host portal links are built on; ``None``
  means those of the Management API request.
- ``PORTAL_PLATFORM_NAME`` (``"Developer portal"``): shown in the portal's header and titles.
- ``PORTAL_LOGIN_MAX_FAILURES`` (``5``), ``PORTAL_LOGIN_MAX_FAILURES_PER_IP`` (``50``),
  ``PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT`` (``100``) and ``PORTAL_LOGIN_LOCKOUT_SECONDS``
  (``900``): failed password sign-ins (the portal's and the admin's) allowed per pair of
  account and IP, per IP and per account within the lockout window (``apikeys.signin``).
- ``SECRET_SCANNING_PUBLIC_KEYS`` (``{}``): the public keys GitHub's secret scanning signs
  its leak reports with, ``{key identifier: PEM}`` (ECDSA P-256). Empty: every report to
  ``/api/v1/secret_scanning/github`` is refused (401). Given as configuration rather than
  fetched from GitHub, since the service may not reach GitHub.
- ``WEBHOOKS_ALLOW_PRIVATE_TARGETS`` (``False``): accept webhook endpoints in private,
  loopback or link-local ranges (development and tests only).
- ``WEBHOOK_TIMEOUT_SECONDS`` (``10``): an endpoint must answer 2xx within this to count as
  delivered.
- ``WEBHOOK_RETRY_SCHEDULE`` (``[5, 300, 1800, 7200, 18000, 36000, 36000]``): seconds
  between one failed attempt and the next; when it is spent the delivery is failed (the
  default: 8 attempts over 27.6 hours).
- ``WEBHOOK_DISABLE_AFTER_DAYS`` (``5``): an endpoint whose attempts all failed for this
  long is disabled.
- ``WEBHOOK_CLAIM_SECONDS`` (``60``): how long a worker holds an attempt it took; a worker
  killed mid-attempt leaves it to be sent again after this. More than the timeout.
- ``API_KEY_EXPIRING_DAYS`` (``7``): ``api_key.expiring`` is sent this many days before a
  key's ``expires_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Secret for the keyed digest (HMAC-SHA-256) of every API key. Independent of
    # SECRET_KEY so that rotating Django's secret does not invalidate every key.
    # Required; changing it invalidates all issued keys.
    "HASHING_SECRET": None,
    # Honour X-Forwarded-For for the caller's IP (only behind a proxy you control).
    "TRUST_X_FORWARDED_FOR": False,
    # Longest grace period a rotation may keep the previous secret valid for (seconds).
    "MAX_ROTATION_GRACE_SECONDS": 7 * 24 * 3600,
    # Failed verifications one M2M application may make per window before further failures
    # answer 429 (valid keys still verify), and the window in seconds.
    "VERIFY_FAILURE_LIMIT": 300,
    "VERIFY_FAILURE_WINDOW": 60,
    # Where the sliding-window limits count (apikeys.ratelimit): a `limits` storage URI
    # ("redis://…", "memory://", "apikeys-db://"); empty: the default cache's Redis, else
    # the project's database, so that every worker process shares the counts.
    "RATELIMIT_STORAGE": "",
    # Failed client authentications at /oauth2/token per client_id and per client IP within
    # the window (seconds) before further failures answer 429; a correct secret still passes.
    "TOKEN_FAILURE_LIMIT": 10,
    "TOKEN_FAILURE_LIMIT_PER_IP": 50,
    "TOKEN_FAILURE_WINDOW": 60,
    # Keys refused by ApiKeyAuthentication one client IP may present per window before
    # further refusals answer 429 (valid keys still authenticate), and the window in seconds.
    "AUTHENTICATION_FAILURE_LIMIT": 300,
    "AUTHENTICATION_FAILURE_WINDOW": 60,
    # The audience an M2M token request may name; None: "<scheme>://<host>/api" of the request.
    "MANAGEMENT_API_AUDIENCE": None,
    # With Redis as the default cache: seconds a worker may keep a checked M2M access token
    # (apikeys.tokencache). Changes to an application apply at once anyway (a version in
    # Redis); this bounds only what Redis cannot cover. 0: no cache.
    "M2M_TOKEN_CACHE_SECONDS": 60,
    # With Redis: seconds between two write-backs of the verification counts kept in Redis
    # into the database, and whether each worker runs them in a thread (apikeys.keycache).
    "COUNTS_WRITE_BACK_INTERVAL": 1,
    "COUNTS_WRITE_BACK_THREAD": True,
    # Days of usage history (hourly buckets per key) kept; `manage.py apikeys_prune_usage`
    # deletes older buckets.
    "USAGE_RETENTION_DAYS": 400,
    # --- Self-serve portal (the ``portal`` app).
    # Hosts a portal link's ``return_url`` may point at: exact names ("app.example.com") or
    # a leading dot for a domain and its subdomains (".example.com"). Empty: no return_url
    # is accepted. Anything else is refused, so a portal link is never an open redirect.
    "PORTAL_RETURN_URL_HOSTS": [],
    # Scheme and host that portal links are built on ("https://keys.example.com"); None:
    # the scheme and host the Management API request came in on.
    "PORTAL_PUBLIC_URL": None,
    # The platform's name, shown in the portal's header and page titles.
    "PORTAL_PLATFORM_NAME": "Developer portal",
    # Password sign-in throttling, the portal's and the admin's (apikeys.signin): failed
    # sign-ins allowed per pair (account, client IP), per client IP and per account, within
    # a window of PORTAL_LOGIN_LOCKOUT_SECONDS; past any, sign-in is refused until the
    # window ends. The pair's limit is the low one, so a stranger cannot lock a customer out.
    "PORTAL_LOGIN_MAX_FAILURES": 5,
    "PORTAL_LOGIN_MAX_FAILURES_PER_IP": 50,
    "PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT": 100,
    "PORTAL_LOGIN_LOCKOUT_SECONDS": 15 * 60,
    # --- Leaked keys.
    # GitHub secret scanning's public keys, {key identifier: PEM of an ECDSA P-256 public
    # key}; a report signed by none of them is refused. Empty: the GitHub door is shut.
    "SECRET_SCANNING_PUBLIC_KEYS": {},
    # --- Webhooks and background work (apikeys.services.webhooks, apikeys.tasks).
    # Accept endpoints in private, loopback or link-local ranges (development, tests).
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": False,
    # A 2xx within this many seconds is a delivery.
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    # Seconds between a failed attempt and the next; spent: the delivery has failed.
    # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: 8 attempts over 27.6 hours.
    "WEBHOOK_RETRY_SCHEDULE": [5, 300, 1800, 7200, 18000, 36000, 36000],
    # An endpoint failing every attempt for this many days in a row is disabled.
    "WEBHOOK_DISABLE_AFTER_DAYS": 5,
    # How long a worker holds the attempt it took (a killed worker's runs out).
    "WEBHOOK_CLAIM_SECONDS": 60,
    # api_key.expiring is sent this many days before a key's expires_at.
    "API_KEY_EXPIRING_DAYS": 7,
}


def get(name: str) -> Any:
    """Return the ``APIKEYS[name]`` setting, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown APIKEYS setting {name!r}")
    configured = getattr(settings, "APIKEYS", {})
    if not isinstance(configured, Mapping):
        # Reported as apikeys.E005 by the system checks; refuse clearly if reached anyway.
        raise ImproperlyConfigured("The APIKEYS setting must be a dict.")
    return configured.get(name, DEFAULTS[name])
