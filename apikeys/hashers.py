"""The hasher of M2M client secrets: HMAC-SHA-256 under the app's hashing secret.

Rules:

- it is for random, high-entropy secrets only (client secrets, like API keys: ~238 bits).
  A password hash's work factor protects guessable passwords; it adds nothing to a secret
  nobody can guess, and it costs every token request (and every wrong guess, which an
  outsider can send at will) a password hash's hundreds of milliseconds. Never use it for
  user passwords: register it in ``PASSWORD_HASHERS`` *after* the password hasher, so it is
  never the default, and name it in ``OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]``;
- the digest is the one API keys use (:func:`apikeys.crypto.digest`), keyed with
  ``APIKEYS["HASHING_SECRET"]``: a stolen database alone does not let anyone test guesses.
  Changing the hashing secret invalidates every client secret stored this way;
- no salt: the key already makes the digest unique to this service, and the secrets
  themselves never repeat;
- comparison is constant-time.

Stored as ``apikeys_client_hmac$<64 hex>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.core.exceptions import ImproperlyConfigured
from django.utils.encoding import force_str
from django.utils.translation import gettext_noop as _

from apikeys import conf, crypto

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

ALGORITHM = "apikeys_client_hmac"


def _hashing_secret() -> str:
    secret = conf.get("HASHING_SECRET")
    if not secret:
        raise ImproperlyConfigured("APIKEYS['HASHING_SECRET'] is required to hash client secrets.")
    return str(secret)


class ClientSecretHasher(BasePasswordHasher):
    """Keyed HMAC-SHA-256 of a random client secret: microseconds, not a password hash's
    hundreds of milliseconds. See the module's rules before using it for anything else."""

    algorithm = ALGORITHM

    def salt(self) -> str:
        # Unsalted on purpose (see the module docstring); make_password asks anyway.
        return ""

    def encode(self, password: str | bytes, salt: str = "") -> str:
        if password is None:
            raise TypeError("password must be provided.")
        return f"{self.algorithm}${crypto.digest(force_str(password), _hashing_secret())}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, digest = encoded.split("$", 1)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "hash": digest, "salt": ""}

    def verify(self, password: str | bytes, encoded: str) -> bool:
        return crypto.constant_time_equals(self.encode(password), encoded)

    def safe_summary(self, encoded: str) -> dict[StrOrPromise, Any]:
        decoded = self.decode(encoded)
        return {_("algorithm"): decoded["algorithm"], _("hash"): mask_hash(decoded["hash"])}

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str | bytes, encoded: str) -> None:
        pass
