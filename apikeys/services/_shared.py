"""What the services share: input checks, the owner lock, the conflict shape, helpers.

Private to :mod:`apikeys.services`; nothing outside the package imports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction

from apikeys import conf
from apikeys import exceptions as errors
from apikeys.http import normalised_ip
from apikeys.models import AuditEvent, Organization

User = get_user_model()


Action = AuditEvent.Action


def clean_ip(ip: str | None) -> str | None:
    """``ip`` normalised, or ``None`` if it is not an IP address (parsed once per address
    per process: see :func:`apikeys.http.client_ip`)."""
    if not ip:
        return None
    return normalised_ip(ip)


def check_text(value: Any, *, field: str, max_length: int, min_length: int = 1) -> str:
    if not isinstance(value, str):
        raise errors.ValidationFailed(
            f"{field} must be a string.", code="INVALID_FIELD", field=field
        )
    text = value.strip()
    if not min_length <= len(text) <= max_length:
        raise errors.ValidationFailed(
            f"{field} must be {min_length} to {max_length} characters.",
            code="INVALID_FIELD",
            field=field,
        )
    return text


def check_pattern(value: Any, *, field: str, pattern: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise errors.ValidationFailed(f"{field} must be {what}.", code="INVALID_FIELD", field=field)
    return value


def check_email(email: Any) -> str:
    address = check_text(email, field="email", max_length=254)
    try:
        validate_email(address)
    except DjangoValidationError as exc:
        raise errors.ValidationFailed(
            "email is not a valid address.", code="INVALID_EMAIL", field="email"
        ) from exc
    return address


def hold_owner(owner: Any) -> None:
    """Inside a transaction that writes a row pointing at ``owner`` (a key, a membership):
    make sure the owner still exists, and keep it from being deleted until that commits.

    On PostgreSQL a ``FOR KEY SHARE`` lock: it waits for a delete in progress (which holds
    the row ``FOR UPDATE`` while it revokes the owner's keys) and then finds the row gone, so
    no key can slip in between that revocation and the delete; concurrent issuers for one
    owner do not wait for each other. Elsewhere (SQLite) writers are serialized anyway.
    """
    # (Not type(owner): the portal passes request.user, a lazy object.)
    model = Organization if isinstance(owner, Organization) else User
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_key_share_sql(connection, model), [owner.pk])
            exists = cursor.fetchone() is not None
    else:
        exists = model.objects.filter(pk=owner.pk).exists()
    if not exists:
        if model is Organization:
            raise errors.OrganizationNotFound(field="org_code")
        raise errors.UserNotFound(field="user_id")


def _key_share_sql(connection: Any, model: Any) -> str:
    # Django's select_for_update() offers FOR UPDATE and FOR NO KEY UPDATE, both of which
    # would make concurrent issuers for one owner wait for each other.
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(model._meta.pk.column)
    # Names from the model's own meta, quoted; the value is a bound parameter.
    return f"SELECT 1 FROM {table} WHERE {pk} = %s FOR KEY SHARE"  # nosec B608


def replace_related(manager: Any, wanted: Iterable[Any], label: Any) -> list[str] | None:
    """Make the many-to-many set behind ``manager`` exactly ``wanted``: the new set's labels,
    sorted, when that changed it; ``None`` (and no write) when it already was."""
    wanted = list(wanted)
    if {o.pk for o in wanted} == set(manager.values_list("pk", flat=True)):
        return None
    manager.set(wanted)
    return sorted(label(o) for o in wanted)


def group_label(group: Any) -> str:
    return str(group.name)


def permission_label(permission: Any) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def hashing_secret() -> str:
    # A string: checks.py refuses to start without one.
    secret: str = conf.get("HASHING_SECRET")
    return secret


@contextmanager
def atomic_or_conflict(conflict: errors.Conflict) -> Iterator[None]:
    """A transaction in which a uniqueness clash is the caller's coded ``conflict``.

    The one shape of "create (or rename) + audit + clash" in every service::

        with atomic_or_conflict(errors.AudienceTaken(field="audience")):
            api = Api.objects.create(name=name, audience=audience)
            audit_event_record(actor=actor, action=Action.API_CREATED, ...)

    The write and its audit event commit together; an ``IntegrityError`` (a concurrent
    insert won the unique index) rolls both back and raises ``conflict`` instead, so the
    database's message (which quotes the clashing value) never reaches a caller.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise conflict from exc
