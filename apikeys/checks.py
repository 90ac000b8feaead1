"""System checks that reject bad ``APIKEYS`` values at start-up, and a django-oauth-toolkit
set-up that would leave M2M client secrets slow to check or tokens of a disabled
application working."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning

from apikeys.conf import DEFAULTS, get

# Shorter than this and an HMAC secret is guessable offline from one leaked digest.
MIN_HASHING_SECRET_LENGTH = 32


@register(Tags.security)
def check_apikeys_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    configured = getattr(settings, "APIKEYS", {})
    if not isinstance(configured, Mapping):
        return [Error("The APIKEYS setting must be a dict.", id="apikeys.E005")]
    for name in configured:
        if name not in DEFAULTS:
            errors.append(
                Error(
                    f"Unknown APIKEYS setting {name!r}.",
                    hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                    id="apikeys.E001",
                )
            )
    secret = get("HASHING_SECRET")
    if not isinstance(secret, str) or len(secret) < MIN_HASHING_SECRET_LENGTH:
        errors.append(
            Error(
                "APIKEYS['HASHING_SECRET'] must be a string of at least "
                f"{MIN_HASHING_SECRET_LENGTH} characters.",
                hint="Set APIKEYS_HASHING_SECRET to a long random value.",
                id="apikeys.E002",
            )
        )
    grace = get("MAX_ROTATION_GRACE_SECONDS")
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
        errors.append(
            Error(
                "APIKEYS['MAX_ROTATION_GRACE_SECONDS'] must be a non-negative integer.",
                id="apikeys.E003",
            )
        )
    if not isinstance(get("TRUST_X_FORWARDED_FOR"), bool):
        errors.append(
            Error("APIKEYS['TRUST_X_FORWARDED_FOR'] must be True or False.", id="apikeys.E004")
        )
    return errors


# A return-URL host entry: a host name or IP ("app.example.com", "127.0.0.1", "[::1]"), or a
# leading dot for a domain and its subdomains (".example.com"). Never "*": that would make
# every portal link an open redirect.
_RETURN_HOST_PATTERN = re.compile(
    r"^(\.?[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$", re.IGNORECASE
)


@register(Tags.security)
def check_portal_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The self-serve portal's ``APIKEYS`` knobs (``PORTAL_…``)."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []  # reported once, as apikeys.E005, by check_apikeys_settings
    errors: list[Error] = []
    hosts = get("PORTAL_RETURN_URL_HOSTS")
    if not isinstance(hosts, list | tuple) or not all(
        isinstance(h, str) and _RETURN_HOST_PATTERN.fullmatch(h) for h in hosts
    ):
        errors.append(
            Error(
                "APIKEYS['PORTAL_RETURN_URL_HOSTS'] must be a list of host names, "
                "each optionally starting with a dot for a domain and its subdomains.",
                hint="For example APIKEYS_PORTAL_RETURN_URL_HOSTS=app.example.com,.example.org "
                "(no scheme, no port, no '*').",
                id="apikeys.E101",
            )
        )
    public_url = get("PORTAL_PUBLIC_URL")
    if public_url is not None:
        parts = urlsplit(public_url) if isinstance(public_url, str) else None
        if (
            parts is None
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.path not in {"", "/"}
            or parts.query
            or parts.fragment
            or parts.username
        ):
            errors.append(
                Error(
                    "APIKEYS['PORTAL_PUBLIC_URL'] must be a scheme and host, such as "
                    "'https://keys.example.com', or None.",
                    id="apikeys.E102",
                )
            )
    name = get("PORTAL_PLATFORM_NAME")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
        errors.append(
            Error("APIKEYS['PORTAL_PLATFORM_NAME'] must be 1 to 64 characters.", id="apikeys.E103")
        )
    for knob in (
        "PORTAL_LOGIN_MAX_FAILURES",
        "PORTAL_LOGIN_MAX_FAILURES_PER_IP",
        "PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        "PORTAL_LOGIN_LOCKOUT_SECONDS",
    ):
        value = get(knob)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(
                Error(f"APIKEYS[{knob!r}] must be a positive integer.", id="apikeys.E104")
            )
    return errors


# Knobs with a rule of their own in this module. Every other knob, including any added
# later, is held by check_apikeys_setting_kinds to the kind of its default, so that it is
# checked from the day it exists: a negative lifetime, window or limit is refused.
_KNOBS_WITH_OWN_RULES = frozenset(
    {
        "HASHING_SECRET",
        "TRUST_X_FORWARDED_FOR",
        "MAX_ROTATION_GRACE_SECONDS",
        "PORTAL_RETURN_URL_HOSTS",
        "PORTAL_PUBLIC_URL",
        "PORTAL_PLATFORM_NAME",
        "PORTAL_LOGIN_MAX_FAILURES",
        "PORTAL_LOGIN_MAX_FAILURES_PER_IP",
        "PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        "PORTAL_LOGIN_LOCKOUT_SECONDS",
        "SECRET_SCANNING_PUBLIC_KEYS",
        "WEBHOOK_RETRY_SCHEDULE",
        "WEBHOOK_TIMEOUT_SECONDS",
        "WEBHOOK_CLAIM_SECONDS",
        "WEBHOOK_DISABLE_AFTER_DAYS",
        "API_KEY_EXPIRING_DAYS",
        "COUNTS_WRITE_BACK_INTERVAL",
        "USAGE_RETENTION_DAYS",
    }
)

# Shortest and longest write-back interval: more often than 20 times a second would make
# the write-back itself the database's load; a minute of counts is the most a Redis that
# loses its memory may take with it.
MIN_WRITE_BACK_INTERVAL = 0.05
MAX_WRITE_BACK_INTERVAL = 60


@register(Tags.security)
def check_write_back_interval(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``COUNTS_WRITE_BACK_INTERVAL``: seconds, a number within the bounds above."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []  # reported once, as apikeys.E005, by check_apikeys_settings
    value = get("COUNTS_WRITE_BACK_INTERVAL")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_WRITE_BACK_INTERVAL <= value <= MAX_WRITE_BACK_INTERVAL
    ):
        return [
            Error(
                "APIKEYS['COUNTS_WRITE_BACK_INTERVAL'] must be a number of seconds from "
                f"{MIN_WRITE_BACK_INTERVAL} to {MAX_WRITE_BACK_INTERVAL}.",
                hint="The default, 1, writes the counts kept in Redis back every second.",
                id="apikeys.E009",
            )
        ]
    return []


@register(Tags.security)
def check_usage_retention(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``USAGE_RETENTION_DAYS``: a whole number of days, 1 or more (0 would delete the
    usage history of the current day at every prune)."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []  # reported once, as apikeys.E005, by check_apikeys_settings
    value = get("USAGE_RETENTION_DAYS")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return [
            Error(
                "APIKEYS['USAGE_RETENTION_DAYS'] must be a whole number of days, 1 or more.",
                hint="The default, 400, keeps a little over a year of usage history.",
                id="apikeys.E010",
            )
        ]
    return []


def _kind_problem(value: Any, default: Any) -> str | None:
    """What ``value`` must be to match the kind of ``default``, or None when it does."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "a whole number of 0 or more"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, list | tuple):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        return None if ok else "a list of strings"
    return None  # a None default says nothing about the kind; such knobs need their own rule


@register(Tags.security)
def check_apikeys_setting_kinds(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every knob without a rule of its own has the kind of its default; and the hashing
    secret is not Django's ``SECRET_KEY`` (sharing it would undo their independence)."""
    configured = getattr(settings, "APIKEYS", {})
    if not isinstance(configured, Mapping):
        return []  # reported once, as apikeys.E005, by check_apikeys_settings
    messages: list[CheckMessage] = []
    for name, default in DEFAULTS.items():
        if name in _KNOBS_WITH_OWN_RULES or name not in configured:
            continue
        problem = _kind_problem(configured[name], default)
        if problem is not None:
            messages.append(
                Error(
                    f"APIKEYS[{name!r}] must be {problem}.",
                    hint=f"Its default is {default!r}.",
                    id="apikeys.E006",
                )
            )
    secret = configured.get("HASHING_SECRET")
    if secret and secret == getattr(settings, "SECRET_KEY", None):
        messages.append(
            CheckWarning(
                "APIKEYS['HASHING_SECRET'] is the same value as SECRET_KEY.",
                hint="Give it a value of its own, so that rotating SECRET_KEY does not "
                "invalidate every API key (changing HASHING_SECRET does).",
                id="apikeys.W001",
            )
        )
    return messages


@register(Tags.security)
def check_admin_site_refuses_portal_sessions(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """With the portal and Django's admin both installed, the admin site must be the
    portal-safe one: otherwise a one-time portal link (which an M2M application with
    ``create:portal_links`` can mint for any user) signs a staff account into the admin."""
    from django.apps import apps

    if not (apps.is_installed("portal") and apps.is_installed("django.contrib.admin")):
        return []
    from django.contrib.admin import site

    from apikeys.admin_site import PortalSafeAdminSite

    if isinstance(site, PortalSafeAdminSite):
        return []
    return [
        Error(
            "The admin site would accept sessions that a portal link signed in.",
            hint=(
                'List "apikeys.apps.AdminConfig" instead of "django.contrib.admin" in '
                "INSTALLED_APPS (or a subclass of it whose default_site subclasses "
                "apikeys.admin_site.PortalSafeAdminSite)."
            ),
            id="apikeys.E201",
        )
    ]


@register(Tags.security)
def check_ratelimit_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The limiter's storage must be one ``limits`` knows, and no window may be longer than
    the database storage keeps events (a day)."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []
    from limits.errors import ConfigurationError

    from apikeys.ratelimit import MAX_WINDOW_SECONDS, storage, storage_uri

    errors: list[CheckMessage] = []
    if not isinstance(get("RATELIMIT_STORAGE"), str):
        return [Error("APIKEYS['RATELIMIT_STORAGE'] must be text.", id="apikeys.E301")]
    try:
        storage(storage_uri())
    except (ConfigurationError, ValueError) as error:
        errors.append(
            Error(
                f"APIKEYS['RATELIMIT_STORAGE'] is not a storage the limiter can use: {error}",
                hint='Use "redis://host:6379/0", "apikeys-db://", "memory://" or leave it empty.',
                id="apikeys.E301",
            )
        )
    for knob in (
        "VERIFY_FAILURE_WINDOW",
        "TOKEN_FAILURE_WINDOW",
        "AUTHENTICATION_FAILURE_WINDOW",
        "PORTAL_LOGIN_LOCKOUT_SECONDS",
    ):
        value = get(knob)
        if isinstance(value, int) and value > MAX_WINDOW_SECONDS:
            errors.append(
                Error(
                    f"APIKEYS[{knob!r}] may be at most {MAX_WINDOW_SECONDS} seconds (a day).",
                    id="apikeys.E302",
                )
            )
    return errors


# GitHub publishes a handful of keys at a time (the current one and those being retired).
MAX_SECRET_SCANNING_PUBLIC_KEYS = 32


@register(Tags.security)
def check_secret_scanning_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``SECRET_SCANNING_PUBLIC_KEYS`` is ``{identifier: PEM}`` and every PEM is an ECDSA P-256
    public key: a key that cannot be read would otherwise shut the GitHub door silently, at
    the first report, instead of at start-up."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []
    from apikeys.crypto import load_p256_public_key

    keys = get("SECRET_SCANNING_PUBLIC_KEYS")
    hint = (
        "A JSON object of key identifier -> PEM, e.g. APIKEYS_SECRET_SCANNING_PUBLIC_KEYS="
        '\'{"90a4…": "-----BEGIN PUBLIC KEY-----\\n…\\n-----END PUBLIC KEY-----\\n"}\' '
        "(the key_identifier and key of each entry of GitHub's published secret-scanning keys)."
    )
    if not isinstance(keys, Mapping):
        return [
            Error(
                "APIKEYS['SECRET_SCANNING_PUBLIC_KEYS'] must be an object of key identifier -> "
                "PEM public key.",
                hint=hint,
                id="apikeys.E401",
            )
        ]
    if len(keys) > MAX_SECRET_SCANNING_PUBLIC_KEYS:
        return [
            Error(
                "APIKEYS['SECRET_SCANNING_PUBLIC_KEYS'] holds more than "
                f"{MAX_SECRET_SCANNING_PUBLIC_KEYS} keys.",
                id="apikeys.E401",
            )
        ]
    errors: list[CheckMessage] = []
    for identifier, pem in keys.items():
        if not isinstance(identifier, str) or not 1 <= len(identifier) <= 256:
            errors.append(
                Error(
                    "APIKEYS['SECRET_SCANNING_PUBLIC_KEYS'] has a key identifier that is not "
                    "1 to 256 characters of text.",
                    hint=hint,
                    id="apikeys.E401",
                )
            )
            continue
        try:
            load_p256_public_key(pem if isinstance(pem, str) else "")
        except ValueError:
            errors.append(
                Error(
                    f"APIKEYS['SECRET_SCANNING_PUBLIC_KEYS'][{identifier[:80]!r}] is not the PEM "
                    "of an ECDSA P-256 public key.",
                    hint=hint,
                    id="apikeys.E402",
                )
            )
    return errors


CLIENT_SECRET_HASHER = "apikeys.hashers.ClientSecretHasher"
OAUTH2_VALIDATOR = "apikeys.oauth.ManagementOAuth2Validator"


@register(Tags.security)
def check_m2m_client_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """django-oauth-toolkit is set up as ``apikeys`` needs it for M2M clients: client secrets
    stored with the keyed digest (not a password hash, whose cost an outsider can make the
    service pay and whose timing tells which client ids exist), never as the default hasher
    of user passwords, and the validator that applies a disabled or narrowed application to
    its tokens already issued."""
    from django.utils.module_loading import import_string

    messages: list[CheckMessage] = []
    hashers = list(getattr(settings, "PASSWORD_HASHERS", []))
    oauth = getattr(settings, "OAUTH2_PROVIDER", {}) or {}
    if oauth.get("CLIENT_SECRET_HASHER") != "apikeys_client_hmac":
        messages.append(
            CheckWarning(
                "M2M client secrets are hashed with a password hasher.",
                hint='Set OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "apikeys_client_hmac" and '
                f'add "{CLIENT_SECRET_HASHER}" to PASSWORD_HASHERS (not first). Existing '
                "secrets move over on their next use.",
                id="apikeys.W002",
            )
        )
    elif CLIENT_SECRET_HASHER not in hashers:
        messages.append(
            Error(
                'OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] names apikeys_client_hmac, which is '
                "not in PASSWORD_HASHERS.",
                hint=f'Add "{CLIENT_SECRET_HASHER}" to PASSWORD_HASHERS, after the password hasher.',
                id="apikeys.E007",
            )
        )
    if hashers and hashers[0] == CLIENT_SECRET_HASHER:
        messages.append(
            Error(
                "The client-secret hasher is the first of PASSWORD_HASHERS: user passwords would "
                "be hashed with a fast digest.",
                hint="Put a password hasher (Argon2) first.",
                id="apikeys.E008",
            )
        )
    validator = oauth.get("OAUTH2_VALIDATOR_CLASS")
    try:
        subclassed = validator is not None and issubclass(
            import_string(validator) if isinstance(validator, str) else validator,
            import_string(OAUTH2_VALIDATOR),
        )
    except ImportError:
        subclassed = False
    if not subclassed:
        messages.append(
            CheckWarning(
                "Disabling an M2M application or narrowing its scopes does not reach the tokens "
                "it already holds.",
                hint=f'Set OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "{OAUTH2_VALIDATOR}" '
                "(or a subclass of it).",
                id="apikeys.W003",
            )
        )
    return messages


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@register(Tags.security)
def check_webhook_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The webhook knobs: whole positive numbers, a non-empty retry schedule of them, and a
    claim longer than the timeout (else a slow attempt could be sent twice at once)."""
    if not isinstance(getattr(settings, "APIKEYS", {}), Mapping):
        return []
    errors: list[CheckMessage] = []
    for knob in (
        "WEBHOOK_TIMEOUT_SECONDS",
        "WEBHOOK_CLAIM_SECONDS",
        "WEBHOOK_DISABLE_AFTER_DAYS",
        "API_KEY_EXPIRING_DAYS",
    ):
        if not _positive_int(get(knob)):
            errors.append(
                Error(f"APIKEYS[{knob!r}] must be a positive integer.", id="apikeys.E501")
            )
    schedule = get("WEBHOOK_RETRY_SCHEDULE")
    if (
        not isinstance(schedule, list | tuple)
        or not schedule
        or not all(_positive_int(v) for v in schedule)
    ):
        errors.append(
            Error(
                "APIKEYS['WEBHOOK_RETRY_SCHEDULE'] must be a non-empty list of positive "
                "whole numbers of seconds.",
                id="apikeys.E502",
            )
        )
    timeout, claim = get("WEBHOOK_TIMEOUT_SECONDS"), get("WEBHOOK_CLAIM_SECONDS")
    if _positive_int(timeout) and _positive_int(claim) and claim <= timeout:
        errors.append(
            Error(
                "APIKEYS['WEBHOOK_CLAIM_SECONDS'] must be longer than "
                "APIKEYS['WEBHOOK_TIMEOUT_SECONDS'].",
                id="apikeys.E503",
            )
        )
    return errors
