"""Key material: generation, checksum, keyed digest and constant-time comparison; and the
check of the ECDSA signatures that GitHub's secret scanning puts on its leak reports.

No database code lives here. A key looks like ``k_live_<40 base62><6 base62 checksum>``:

- the random part has 40 base62 characters from :mod:`secrets` (about 238 bits), so even
  with the displayed prefix (5 of them) and the checksum known, over 170 bits stay secret;
- the checksum is CRC-32 of everything before it, in 6 base62 characters. It lets a typo or
  garbage be rejected without touching the database, and lets secret scanners recognise
  our keys with few false positives. It is not a security feature;
- the service stores only ``HMAC-SHA-256(hashing secret, key)``. A key has enough entropy
  that a fast keyed hash is as safe as a slow password hash, and it keeps verification,
  the hot path, cheap. The hashing secret is separate from ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
import string
import zlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_PREFIX = "k_live_"
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = 12
DISPLAY_SUFFIX_LENGTH = 4

_ALPHABET_SET = frozenset(ALPHABET)

# Anything shaped like one of our keys, whole or cut short: the prefix and the base62 run
# after it. What error bodies and log lines must never carry (see redact_keys).
KEY_SHAPED = re.compile(re.escape(KEY_PREFIX) + r"[0-9A-Za-z]*")
REDACTED_KEY = KEY_PREFIX + "[redacted]"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(body: str) -> str:
    """The 6-character checksum of ``body`` (the key without its checksum)."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key() -> str:
    """A new random key with its checksum. Only ever returned, never stored or logged."""
    body = KEY_PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def is_well_formed(key: str) -> bool:
    """True when ``key`` has our prefix, length, alphabet and a matching checksum.

    Cheap and database-free: a malformed key is refused before any lookup.
    """
    if not isinstance(key, str) or len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    tail = key[len(KEY_PREFIX) :]
    if not _ALPHABET_SET.issuperset(tail):
        return False
    body, given = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(checksum(body), given)


def redact_keys(text: str) -> str:
    """``text`` with every key-shaped run replaced by ``k_live_[redacted]``."""
    return KEY_SHAPED.sub(REDACTED_KEY, text)


def digest(key: str, secret: str) -> str:
    """The keyed digest stored for ``key`` (hex HMAC-SHA-256)."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    """Compare two digests without leaking where they differ through timing."""
    return hmac.compare_digest(a.encode(), b.encode())


def display_prefix(key: str) -> str:
    """The part of a key that may be shown: ``k_live_`` and five more characters."""
    return key[:DISPLAY_PREFIX_LENGTH]


def display_suffix(key: str) -> str:
    """The last four characters, shown to tell keys apart."""
    return key[-DISPLAY_SUFFIX_LENGTH:]


def sha256_hex(text: str) -> str:
    """Plain SHA-256 of ``text`` (UTF-8), in hex: how GitHub's secret scanning names a token
    in the answer to its report (``token_hash``). Not a stored digest: for that, :func:`digest`."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=32)
def load_p256_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    """The ECDSA P-256 public key in ``pem`` (``-----BEGIN PUBLIC KEY-----``).

    Raises ``ValueError`` for anything else: not PEM, not a public key, another curve. Cached
    by the PEM text itself, so a changed setting is read afresh.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ValueError("not an ECDSA P-256 public key")


# An ASN.1/DER ECDSA P-256 signature is at most 72 bytes (96 characters of base64): anything
# much longer is not one, and is refused before it is decoded.
MAX_SIGNATURE_BASE64_LENGTH = 256


def p256_signature_valid(*, public_key_pem: str, signature_base64: str, message: bytes) -> bool:
    """True when ``signature_base64`` (base64 of an ASN.1/DER ECDSA signature) is
    ``public_key_pem``'s signature over ``message`` with SHA-256.

    Every failure (malformed base64, a signature that is not DER, a wrong signature, a key
    that is not P-256) is simply False: the caller answers them all alike.
    """
    if not isinstance(signature_base64, str) or len(signature_base64) > MAX_SIGNATURE_BASE64_LENGTH:
        return False
    try:
        signature = base64.b64decode(signature_base64.strip(), validate=True)
        key = load_p256_public_key(public_key_pem)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------- webhook secrets

WEBHOOK_SECRET_PREFIX = "whsec_"


def generate_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _sealing_key(secret: str) -> bytes:
    # A key of its own, derived from the service's secret with a label, so that the sealed
    # webhook secrets and the key digests never share key material.
    derived = hmac.new(secret.encode("utf-8"), b"apikeys webhook secrets v1", hashlib.sha256)
    return base64.urlsafe_b64encode(derived.digest())


def seal(plaintext: str, secret: str) -> str:
    """``plaintext`` encrypted and authenticated (Fernet: AES-128-CBC and HMAC-SHA-256) with
    a key derived from ``secret``; :func:`unseal` reverses it."""
    return Fernet(_sealing_key(secret)).encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(sealed: str, secret: str) -> str:
    """The plaintext :func:`seal` sealed; ``ValueError`` if ``sealed`` was altered or sealed
    with another secret."""
    try:
        return Fernet(_sealing_key(secret)).decrypt(sealed.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ValueError("not sealed with this secret") from None
