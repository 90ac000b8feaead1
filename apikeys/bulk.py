"""Bulk issuing of real, verifiable API keys: a million in about a minute on PostgreSQL.

For scale tests and benchmarks (``make bench`` loads a million keys with it), and for a
platform that migrates its customers' keys in one go. Every key it makes is a real key: a
random secret from :mod:`secrets` (the same alphabet, length and checksum as
:func:`apikeys.crypto.generate_key`), stored only as its keyed digest, with the snapshot
columns (API id, audience, scope keys, owner codes) and the M2M scope rows that
:func:`apikeys.services.api_key_issue` writes, so that :func:`apikeys.services.api_key_verify`
and every list read them exactly as they read a key issued one at a time.

What differs from ``api_key_issue``, and why:

- rows go in by PostgreSQL ``COPY`` (other databases: ``bulk_create``), in batches, in one
  transaction: one ``INSERT`` and one audit event per key would take an hour for a million;
- the whole batch records **one** ``AuditEvent`` (``api_key.issued``, target type
  ``api_key_batch``, with the count and the first and last ids), not one per key;
- plaintexts are not returned, except those of a ``sample`` of keys spread over the
  batch (for benchmarks to verify); the others are dropped as soon as their digest is made.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apikeys import conf, crypto
from apikeys.models import Api, ApiKey, AuditEvent, Organization, Scope
from apikeys.services import Actor, audit_event_record, resolve_scopes

#: Bytes below 248 map uniformly onto the 62 characters (248 = 4 × 62); others are dropped.
_ACCEPTED = 4 * len(crypto.ALPHABET)
_TO_BASE62 = bytes(
    crypto.ALPHABET[b % len(crypto.ALPHABET)].encode()[0] if b < _ACCEPTED else 0
    for b in range(256)
)
_REJECTED = bytes(range(_ACCEPTED, 256))


@dataclass(frozen=True)
class SampleKey:
    """One key of the batch whose plaintext was kept (for a benchmark to verify it)."""

    key_id: str
    plaintext: str = field(repr=False)


@dataclass(frozen=True)
class BulkIssued:
    """What :func:`api_key_bulk_issue` made: how many keys, their id range, and a sample."""

    count: int
    first_id: str | None
    last_id: str | None
    sample: tuple[SampleKey, ...] = field(repr=False)


def random_key_bodies(count: int) -> list[str]:
    """``count`` random parts of keys (``RANDOM_LENGTH`` base62 characters each).

    Same distribution as :func:`crypto.generate_key` (each character uniform over the
    alphabet, from :mod:`secrets`), but drawn in bulk: one ``token_bytes`` call and one
    C-level ``translate`` instead of forty ``secrets.choice`` calls per key.
    """
    width = crypto.RANDOM_LENGTH
    need = count * width
    chunks: list[bytes] = []
    have = 0
    while have < need:
        # 248 of 256 byte values are kept: ask for a little more than needed.
        raw = secrets.token_bytes((need - have) * 256 // _ACCEPTED + 64)
        kept = raw.translate(_TO_BASE62, _REJECTED)
        chunks.append(kept)
        have += len(kept)
    text = b"".join(chunks)[:need].decode("ascii")
    return [text[i : i + width] for i in range(0, need, width)]


_COUNTER_BITS = 26


def batch_key_ids(count: int, *, start_ms: int | None = None) -> list[str]:
    """``count`` key ids (``api_key_<UUIDv7 hex>``), strictly increasing, all stamped with
    the millisecond the batch started.

    Why not :func:`apikeys.models.new_api_key_id` in a loop: the UUIDv7 generator it uses
    keeps ids increasing by moving its clock one millisecond ahead per id made within the
    same millisecond, so a million ids would be stamped up to 17 minutes in the future and
    keys issued meanwhile would sort before them. Here a 26-bit counter follows the
    timestamp instead (RFC 9562, section 6.2, method 1) and 48 bits stay random.
    """
    ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
    ids = []
    for number in range(count):
        stamp, counter = ms + (number >> _COUNTER_BITS), number & ((1 << _COUNTER_BITS) - 1)
        value = (stamp & 0xFFFF_FFFF_FFFF) << 80
        value |= 0x7 << 76 | (counter >> 14) << 64  # version 7, then 12 counter bits
        value |= 0b10 << 62 | (counter & 0x3FFF) << 48  # RFC variant, 14 more counter bits
        value |= secrets.randbits(48)
        ids.append(f"api_key_{value:032x}")
    return ids


def _owners(
    organizations: Sequence[Organization], users: Sequence[Any]
) -> list[tuple[Organization | None, Any]]:
    owners: list[tuple[Organization | None, Any]] = [(org, None) for org in organizations]
    owners += [(None, user) for user in users]
    if not owners:
        raise ValueError("Give at least one organization or user to own the keys.")
    return owners


def api_key_bulk_issue(
    *,
    api: Api,
    count: int,
    organizations: Sequence[Organization] = (),
    users: Sequence[Any] = (),
    scopes: Sequence[Scope | str] = (),
    name: str = "Bulk key",
    expires_at: datetime | None = None,
    sample: int = 0,
    batch_size: int = 20_000,
    actor: Actor,
) -> BulkIssued:
    """Issue ``count`` keys for ``api`` with ``scopes``, owned in turn by each of
    ``organizations`` and ``users`` (round robin), in one transaction.

    Keys are named ``"{name} {n}"``. The plaintexts of ``sample`` keys, spread evenly over
    the batch, are returned; every other plaintext is dropped once digested.
    """
    if count < 0 or sample < 0 or batch_size < 1:
        raise ValueError("count and sample must be >= 0 and batch_size >= 1.")
    owners = _owners(organizations, users)
    chosen = resolve_scopes(api=api, scopes=scopes)
    sample_every = max(1, count // sample) if sample else 0
    secret = conf.get("HASHING_SECRET").encode()
    keys_made: list[SampleKey] = []
    first_id: str | None = None
    last_id: str | None = None
    now = timezone.now()
    key_ids = iter(batch_key_ids(count))
    common = {
        "api_id": api.pk,
        "api_public_id": api.id,
        "audience": api.audience,
        "scope_keys": " ".join(s.key for s in chosen),
        "status": ApiKey.Status.ACTIVE,
        "created_by": actor.label[:200],
        "created_by_user_id": actor.user.pk
        if actor.user is not None and actor.application is None
        else None,
        "created_by_application_id": actor.application.pk
        if actor.application is not None
        else None,
        "created_on": now,
        "expires_at": expires_at,
        "verification_count": 0,
    }
    with transaction.atomic():
        done = 0
        while done < count:
            size = min(batch_size, count - done)
            rows: list[dict[str, Any]] = []
            for offset, body in enumerate(random_key_bodies(size)):
                number = done + offset
                body = crypto.KEY_PREFIX + body
                plaintext = body + crypto.checksum(body)
                org, user = owners[number % len(owners)]
                key_id = next(key_ids)
                rows.append(
                    {
                        **common,
                        "id": key_id,
                        "name": f"{name} {number + 1}"[:128],
                        "organization_id": org.pk if org else None,
                        "user_id": user.pk if user is not None else None,
                        "org_code": org.code if org else "",
                        "user_public_id": user.public_id if user is not None else "",
                        # Same value as crypto.digest(); hmac.digest is its one-shot C path.
                        "digest": hmac.digest(secret, plaintext.encode(), "sha256").hex(),
                        "key_prefix": crypto.display_prefix(plaintext),
                        "key_suffix": crypto.display_suffix(plaintext),
                    }
                )
                if sample_every and number % sample_every == 0 and len(keys_made) < sample:
                    keys_made.append(SampleKey(key_id=key_id, plaintext=plaintext))
            _insert(rows, [s.pk for s in chosen])
            first_id = first_id or rows[0]["id"]
            last_id = rows[-1]["id"]
            done += size
        if count:
            audit_event_record(
                actor=actor,
                action=AuditEvent.Action.API_KEY_ISSUED,
                target_type="api_key_batch",
                target_id=f"{count} keys"[:64],
                details={
                    "bulk": True,
                    "count": count,
                    "first_id": first_id,
                    "last_id": last_id,
                    "api_id": api.id,
                    "scopes": [s.key for s in chosen],
                },
            )
    return BulkIssued(count=count, first_id=first_id, last_id=last_id, sample=tuple(keys_made))


def _columns() -> list[tuple[str, str, Any]]:
    """(attname, column, default) of every concrete field of ``ApiKey``, in table order."""
    result = []
    for model_field in ApiKey._meta.concrete_fields:
        # Never fails: a concrete field is one with a column.
        assert model_field.column is not None
        default = model_field.get_default() if model_field.has_default() else None
        result.append((model_field.attname, model_field.column, default))
    return result


def _insert(rows: list[dict[str, Any]], scope_pks: list[Any]) -> None:
    columns = _columns()
    if connection.vendor == "postgresql":
        _copy_rows(ApiKey._meta.db_table, columns, rows)
        if scope_pks:
            through = ApiKey.scopes.through
            _copy_rows(
                through._meta.db_table,
                [
                    ("apikey_id", through._meta.get_field("apikey").column, None),
                    ("scope_id", through._meta.get_field("scope").column, None),
                ],
                ({"apikey_id": row["id"], "scope_id": pk} for row in rows for pk in scope_pks),
            )
        return
    # Elsewhere (SQLite): the ORM's bulk insert, same rows.
    ApiKey.objects.bulk_create(
        [
            ApiKey(**{attname: row.get(attname, default) for attname, _, default in columns})
            for row in rows
        ],
        batch_size=500,
    )
    if scope_pks:
        through = ApiKey.scopes.through
        through.objects.bulk_create(
            [through(apikey_id=row["id"], scope_id=pk) for row in rows for pk in scope_pks],
            batch_size=500,
        )


def _copy_rows(
    table: str,
    columns: list[tuple[str, str, Any]],
    rows: Iterator[dict[str, Any]] | list[dict[str, Any]],
) -> None:
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for _, column, _ in columns)
    # A fresh default object per row is not needed: every default here is immutable
    # (None, 0, "active", now), and the mutable one (id) is always given.
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row.get(attname, default) for attname, _, default in columns])
