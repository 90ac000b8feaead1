"""Leaked keys: a report that a key was seen in public, from a platform's own scanner
(``POST /api/v1/api_keys/leaks``) or from GitHub's secret scanning.

The rules of this room:

- A report is a *true positive* when the reported string is a live credential: the current
  secret of an active, unexpired key, or its previous secret while that is still inside its
  rotation grace period (``api_key_verify`` accepts it, so an attacker holding it holds the
  key). A true positive is revoked at once, through :func:`api_key_revoke`, the one revoke
  path (which ends both secrets), and its audit event says reason ``leaked``, the URL and the
  source.
- Everything else is a *false positive* and changes nothing: malformed, bad checksum,
  unknown, a secret replaced and past its grace period (no longer a key), a revoked or an
  expired key. The answer is the same label whatever the reason, so a report reveals no
  more than that the string was (until now) a working key.
- The reported string is handled as verification handles a key: refused without a database
  lookup when malformed, looked up by its keyed digest only, compared in constant time,
  never stored, logged or returned.
- ``api_key.leaked`` (a webhook event) is to be sent beside the revocation, inside the same
  transaction, once webhooks exist: one call in :func:`api_key_leak_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apikeys import crypto
from apikeys import exceptions as errors
from apikeys.models import ApiKey
from apikeys.services._shared import hashing_secret
from apikeys.services.audit import Actor
from apikeys.services.keys import api_key_revoke

TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"

#: The audit event's ``reason`` for a key revoked because it leaked.
LEAKED = "leaked"

#: Longest ``url`` and ``source`` a report may give (they go into the audit trail).
MAX_URL_LENGTH = 2048
MAX_SOURCE_LENGTH = 128


@dataclass(frozen=True)
class LeakReport:
    """The verdict on one reported string: ``label`` is ``true_positive`` (the key
    ``key_id`` was live and is now revoked) or ``false_positive`` (nothing changed,
    ``key_id`` is None)."""

    label: str
    key_id: str | None = None

    @property
    def is_true_positive(self) -> bool:
        return self.label == TRUE_POSITIVE


_FALSE = LeakReport(label=FALSE_POSITIVE)


def _optional_text(value: Any, *, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.ValidationFailed(
            f"{field} must be a string.", code="INVALID_FIELD", field=field
        )
    # NUL: PostgreSQL's text and jsonb refuse it, and no URL or source name holds one.
    if len(value) > max_length or "\x00" in value:
        raise errors.ValidationFailed(
            f"{field} must be at most {max_length} characters, without NUL.",
            code="INVALID_FIELD",
            field=field,
        )
    return value


def api_key_leak_report(
    *, key: str, url: str | None, source: str | None, actor: Actor
) -> LeakReport:
    """Judge a report that ``key`` leaked (found at ``url``, by ``source``), and revoke the
    key at once when the report is a true positive.

    ``url`` and ``source`` are checked (text, at most ``MAX_URL_LENGTH`` and
    ``MAX_SOURCE_LENGTH`` characters, no NUL; else ``ValidationFailed``) before anything else.
    Costs what a failed verification costs: no query for a malformed key, one read by digest
    otherwise, and the revocation's writes for a true positive.
    """
    url = _optional_text(url, field="url", max_length=MAX_URL_LENGTH)
    source = _optional_text(source, field="source", max_length=MAX_SOURCE_LENGTH)
    if not crypto.is_well_formed(key):
        return _FALSE
    key_digest = crypto.digest(key, hashing_secret())
    with transaction.atomic():
        # Locked: a rotation or revocation racing this report waits for it, so the verdict
        # and the revocation are about one state of the key.
        candidate = (
            ApiKey.objects.select_for_update()
            .filter(Q(digest=key_digest) | Q(previous_digest=key_digest))
            .first()
        )
        if candidate is None or not _is_live(candidate, key_digest):
            return _FALSE
        revoked = api_key_revoke(
            api_key=candidate,
            actor=actor,
            reason=LEAKED,
            details={"url": url, "source": source},
        )
        # The webhook event api_key.leaked is to be recorded here, in this transaction, once
        # webhooks exist (the contract's "Leaked keys").
    return LeakReport(label=TRUE_POSITIVE, key_id=revoked.id)


def _is_live(candidate: ApiKey, key_digest: str) -> bool:
    """Would ``api_key_verify`` accept the secret whose digest is ``key_digest``?"""
    now = timezone.now()
    # Both comparisons always run, in constant time: the index lookup matched on equality.
    current = crypto.constant_time_equals(candidate.digest, key_digest)
    previous = crypto.constant_time_equals(candidate.previous_digest or "", key_digest)
    in_grace = (
        previous
        and candidate.previous_expires_at is not None
        and candidate.previous_expires_at > now
    )
    if not (current or in_grace):
        return False  # a replaced secret past its grace period is no longer a key
    if candidate.status != ApiKey.Status.ACTIVE:
        return False
    return candidate.expires_at is None or candidate.expires_at > now
