"""The app's own settings: one ``APIKEYS`` dict in Django settings, read at use.

Values are looked up on every access (never cached at import), so ``override_settings``
in tests and settings reloads behave as expected.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Secret for the keyed digest (HMAC-SHA-256) of every API key. Independent of
    # SECRET_KEY so that rotating Django's secret does not invalidate every key.
    # Required; changing it invalidates all issued keys.
    "HASHING_SECRET": None,
    # Honour X-Forwarded-For for the caller's IP (only behind a proxy you control).
    "TRUST_X_FORWARDED_FOR": False,
    # Longest grace period a rotation may keep the previous secret valid for (seconds).
    "MAX_ROTATION_GRACE_SECONDS": 7 * 24 * 3600,
}


def get(name: str) -> Any:
    """Return the ``APIKEYS[name]`` setting, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown APIKEYS setting {name!r}")
    return getattr(settings, "APIKEYS", {}).get(name, DEFAULTS[name])
