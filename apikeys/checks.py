"""System checks that reject bad ``APIKEYS`` values at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

from apikeys.conf import DEFAULTS, get

# Shorter than this and an HMAC secret is guessable offline from one leaked digest.
MIN_HASHING_SECRET_LENGTH = 32


@register(Tags.security)
def check_apikeys_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    configured = getattr(settings, "APIKEYS", {})
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
