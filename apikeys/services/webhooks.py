"""Webhooks: endpoints, the events they subscribe to, and the delivery of those events.

Rules:

- An event is recorded with :func:`event_record` inside the transaction of the change it
  reports (an outbox): a change that rolls back leaves no event, a committed change never
  loses its event. The same transaction adds one ``WebhookDelivery`` per enabled webhook
  subscribed to the event's type; after commit each is handed to the task runner
  (``apikeys.tasks.webhook_deliver``), and the periodic :func:`webhook_deliveries_due`
  hands over again whatever is due and not taken (retries, and deliveries whose hand-over
  was lost in a crash).
- An attempt is taken by one worker at a time (:func:`webhook_delivery_attempt` claims it
  with a conditional UPDATE, a lease of ``WEBHOOK_CLAIM_SECONDS``), signed after the
  Standard Webhooks specification with the endpoint's secret (``webhook-id`` is the
  event's id, the same on every attempt, so receivers can drop repeats), and sent to an
  address checked at that moment (:mod:`apikeys.outbound`).
- A 2xx answer within ``WEBHOOK_TIMEOUT_SECONDS`` is delivered; anything else is retried
  after the delays of ``WEBHOOK_RETRY_SCHEDULE``, then failed. An endpoint whose attempts
  all failed for ``WEBHOOK_DISABLE_AFTER_DAYS`` is disabled (an audit event says when).
- The payload carries the key as the Management API's get shows it, never a secret; the
  signing secret is shown once, at creation, and kept sealed.
- Every function that takes ``now`` uses it as the clock, so that tests replay a day of
  retries without waiting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from standardwebhooks.webhooks import Webhook as StandardWebhook

from apikeys import conf, crypto, limits, outbound
from apikeys import exceptions as errors
from apikeys.models import (
    ONCE_PER_KEY_EVENTS,
    WEBHOOK_EVENT_TYPES,
    ApiKey,
    AuditEvent,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from apikeys.services._shared import check_text, hashing_secret
from apikeys.services.audit import Actor, audit_event_record

logger = logging.getLogger(__name__)

Action = AuditEvent.Action
Status = WebhookDelivery.Status

# The task that delivers one delivery (apikeys.tasks); named by path because the tasks
# module calls these services (the layers allow no import back).
DELIVER_TASK = "apikeys.tasks.webhook_deliver"
# At most this many due deliveries are handed over per run of webhook_deliveries_due.
DUE_BATCH = 500


@dataclass(frozen=True)
class CreatedWebhook:
    """A new webhook and its signing secret: the one time the secret is shown."""

    webhook: Webhook
    secret: str

    def __repr__(self) -> str:
        return f"CreatedWebhook(webhook={self.webhook.id!r}, secret=<hidden>)"


# --------------------------------------------------------------------------- payload


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def api_key_object(key: ApiKey) -> dict[str, Any]:
    """The key as ``GET /api/v1/api_keys/{key_id}`` shows it (never a secret)."""
    return {
        "id": key.id,
        "name": key.name,
        "type": key.type,
        "status": key.effective_status,
        "key_prefix": key.key_prefix,
        "key_suffix": key.key_suffix,
        "created_on": _iso(key.created_on),
        "created_by": key.created_by or None,
        "last_verified_on": _iso(key.last_verified_on),
        "last_verified_ip": key.last_verified_ip,
        "verification_count": key.verification_count,
        "api_ids": [key.api_public_id],
        "scopes": key.scope_list,
        "org_code": key.org_code or None,
        "user_id": key.user_public_id or None,
        "expires_at": _iso(key.expires_at),
        "rotated_on": _iso(key.rotated_on),
        "revoked_on": _iso(key.revoked_on),
        **limits.key_limits_json(key, timezone.now()),
    }


def _actor_object(actor: Actor) -> dict[str, Any]:
    if actor.application is not None:
        return {"type": "application", "id": str(actor.application.client_id)}
    if actor.user is not None:
        return {"type": "user", "id": str(actor.user.public_id)}
    return {"type": "system", "id": None}


# --------------------------------------------------------------------------- events


def _hand_over(delivery_ids: list[str]) -> None:
    """After commit, give each delivery to the task runner. A hand-over lost here (a crash
    right after commit, a task backend down) is made again by webhook_deliveries_due."""
    if not delivery_ids:
        return

    def enqueue() -> None:
        try:
            deliver = import_string(DELIVER_TASK)
            for delivery_id in delivery_ids:
                deliver.enqueue(delivery_id)
        except Exception:
            logger.exception("Webhook deliveries not handed over; the periodic job will.")

    transaction.on_commit(enqueue)


def _subscribed(event_type: str) -> list[Webhook]:
    # Webhooks are few (platform-wide endpoints): filtered here, the same on every database.
    return [
        webhook
        for webhook in Webhook.objects.filter(disabled_on__isnull=True)
        if event_type in webhook.event_types
    ]


def _event_unsaved(
    *, event_type: str, api_key: ApiKey, actor: Actor, now: datetime
) -> WebhookEvent:
    event = WebhookEvent(type=event_type, api_key=api_key, created_on=now)
    event.payload = {
        "id": event.id,
        "type": event_type,
        "timestamp": _iso(now),
        "data": {"api_key": api_key_object(api_key), "actor": _actor_object(actor)},
    }
    return event


def _deliveries_create(events: list[WebhookEvent], webhooks: list[Webhook], now: datetime) -> None:
    deliveries = WebhookDelivery.objects.bulk_create(
        (
            WebhookDelivery(webhook=webhook, event=event, next_attempt_on=now, created_on=now)
            for event in events
            for webhook in webhooks
        ),
        batch_size=500,
    )
    _hand_over([d.id for d in deliveries])


def _event_record_once(
    *, event_type: str, api_key: ApiKey, actor: Actor, now: datetime, webhooks: list[Webhook]
) -> WebhookEvent | None:
    event = _event_unsaved(event_type=event_type, api_key=api_key, actor=actor, now=now)
    with transaction.atomic():
        try:
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:
            return None  # recorded before (by this job's previous run or a racing one)
        _deliveries_create([event], webhooks, now)
    return event


def event_record(
    *, event_type: str, api_key: ApiKey, actor: Actor, now: datetime | None = None
) -> WebhookEvent | None:
    """Record one ``event_type`` event about ``api_key`` and its deliveries to every enabled
    webhook subscribed to it. Call it inside the transaction of the change it reports.

    ``api_key.expiring`` and ``api_key.expired`` are recorded once per key: a second call
    records nothing and returns None. The key is read as it is now (after the change)."""
    return events_record(event_type=event_type, api_keys=[api_key], actor=actor, now=now)[0]


def events_record(
    *, event_type: str, api_keys: Iterable[ApiKey], actor: Actor, now: datetime | None = None
) -> list[WebhookEvent | None]:
    """:func:`event_record` for each of ``api_keys`` (the webhooks read once)."""
    if event_type not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    now = now or timezone.now()
    webhooks = _subscribed(event_type)
    if event_type in ONCE_PER_KEY_EVENTS:
        return [
            _event_record_once(
                event_type=event_type, api_key=key, actor=actor, now=now, webhooks=webhooks
            )
            for key in api_keys
        ]
    # Any number of keys (an owner's, on its deletion) in a few statements.
    events = [
        _event_unsaved(event_type=event_type, api_key=key, actor=actor, now=now) for key in api_keys
    ]
    with transaction.atomic():
        WebhookEvent.objects.bulk_create(events, batch_size=500)
        _deliveries_create(events, webhooks, now)
    return list(events)


def api_key_expiring_events_record(*, now: datetime | None = None) -> int:
    """Periodic job: ``api_key.expiring`` for each active key that expires within
    ``API_KEY_EXPIRING_DAYS`` (once per key); how many were recorded."""
    now = now or timezone.now()
    horizon = now + timedelta(days=conf.get("API_KEY_EXPIRING_DAYS"))
    keys = (
        ApiKey.objects.filter(
            status=ApiKey.Status.ACTIVE, expires_at__gt=now, expires_at__lte=horizon
        )
        .exclude(webhook_events__type="api_key.expiring")
        .order_by("pk")
    )
    recorded = events_record(
        event_type="api_key.expiring", api_keys=keys, actor=Actor.system(), now=now
    )
    return sum(event is not None for event in recorded)


def api_key_expired_events_record(*, now: datetime | None = None) -> int:
    """Periodic job: ``api_key.expired`` for each key past its ``expires_at`` and not revoked
    (once per key); how many were recorded."""
    now = now or timezone.now()
    keys = (
        ApiKey.objects.filter(status=ApiKey.Status.ACTIVE, expires_at__lte=now)
        .exclude(webhook_events__type="api_key.expired")
        .order_by("pk")
    )
    recorded = events_record(
        event_type="api_key.expired", api_keys=keys, actor=Actor.system(), now=now
    )
    return sum(event is not None for event in recorded)


# Finished deliveries and their events are kept this long (the admin's and the API's
# history), then pruned by the webhooks.prune job; once-per-key events are kept for good
# (they are what makes them once per key).
HISTORY_DAYS = 30


def webhook_history_prune(*, now: datetime | None = None) -> int:
    """Periodic job: delete finished deliveries older than ``HISTORY_DAYS`` and the events
    left with none (except once-per-key ones); how many rows went."""
    cutoff = (now or timezone.now()) - timedelta(days=HISTORY_DAYS)
    deliveries, _ = WebhookDelivery.objects.filter(
        created_on__lt=cutoff, status__in=[Status.DELIVERED, Status.FAILED]
    ).delete()
    events, _ = (
        WebhookEvent.objects.filter(created_on__lt=cutoff, deliveries__isnull=True)
        .exclude(type__in=ONCE_PER_KEY_EVENTS)
        .delete()
    )
    return deliveries + events


# --------------------------------------------------------------------------- endpoints


def _allow_private() -> bool:
    return bool(conf.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS"))


def _check_endpoint_url(value: Any) -> str:
    url = check_text(value, field="endpoint_url", max_length=2000)
    try:
        outbound.check_target(url, allow_private=_allow_private())
    except outbound.TargetRefused as exc:
        raise errors.InvalidEndpointUrl(str(exc), field="endpoint_url") from None
    return url


def _check_event_types(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise errors.ValidationFailed(
            "event_types must be a non-empty list of event types.",
            code="INVALID_FIELD",
            field="event_types",
        )
    for item in value:
        if item not in WEBHOOK_EVENT_TYPES:
            raise errors.ValidationFailed(
                f"Unknown event type {str(item)[:64]!r}; known: {', '.join(WEBHOOK_EVENT_TYPES)}.",
                code="INVALID_EVENT_TYPE",
                field="event_types",
            )
    return sorted(set(value), key=list(WEBHOOK_EVENT_TYPES).index)


def _check_description(value: Any) -> str:
    return check_text(value, field="description", max_length=200, min_length=0)


def webhook_create(
    *, endpoint_url: str, event_types: list[str], description: str = "", actor: Actor
) -> CreatedWebhook:
    """Create a webhook; its signing secret (``whsec_…``) is in the result, and only there."""
    # The URL last: its check resolves the host, the others are cheap.
    types = _check_event_types(event_types)
    text = _check_description(description)
    url = _check_endpoint_url(endpoint_url)
    secret = crypto.generate_webhook_secret()
    with transaction.atomic():
        webhook = Webhook.objects.create(
            endpoint_url=url,
            event_types=types,
            description=text,
            secret_sealed=crypto.seal(secret, hashing_secret()),
            created_by=actor.label[:200],
        )
        audit_event_record(
            actor=actor,
            action=Action.WEBHOOK_CREATED,
            target_type="webhook",
            target_id=webhook.id,
            details={"endpoint_url": url, "event_types": types},
        )
    return CreatedWebhook(webhook=webhook, secret=secret)


def webhook_update(
    *,
    webhook: Webhook,
    actor: Actor,
    endpoint_url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Webhook:
    """Change what is given (None: unchanged). ``enabled=True`` re-enables a disabled
    endpoint (its failure run starts afresh); ``False`` disables it."""
    changes: dict[str, Any] = {}
    if endpoint_url is not None:
        changes["endpoint_url"] = _check_endpoint_url(endpoint_url)
    if event_types is not None:
        changes["event_types"] = _check_event_types(event_types)
    if description is not None:
        changes["description"] = _check_description(description)
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
        if enabled is True and locked.disabled_on is not None:
            changes["disabled_on"] = None
            changes["failing_since"] = None
        elif enabled is False and locked.disabled_on is None:
            changes["disabled_on"] = timezone.now()
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save(update_fields=list(changes))
            audit_event_record(
                actor=actor,
                action=Action.WEBHOOK_UPDATED,
                target_type="webhook",
                target_id=locked.id,
                details={
                    k: (_iso(v) if isinstance(v, datetime) else v) for k, v in changes.items()
                },
            )
    return locked


def webhook_delete(*, webhook: Webhook, actor: Actor) -> None:
    """Delete a webhook and its deliveries (nothing more is sent to it)."""
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action=Action.WEBHOOK_DELETED,
            target_type="webhook",
            target_id=webhook.id,
            details={"endpoint_url": webhook.endpoint_url},
        )
        webhook.delete()


def webhook_delivery_retry(
    *, delivery: WebhookDelivery, actor: Actor, now: datetime | None = None
) -> WebhookDelivery:
    """Send ``delivery`` once more, now, whatever its status (a delivered one too). The
    endpoint must be enabled: re-enable it first."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.webhook.disabled_on is not None:
            raise errors.ValidationFailed(
                "The webhook is disabled; enable it before retrying.",
                code="WEBHOOK_DISABLED",
            )
        locked.status = Status.PENDING
        locked.next_attempt_on = now
        locked.claimed_until = None
        locked.save(update_fields=["status", "next_attempt_on", "claimed_until"])
        audit_event_record(
            actor=actor,
            action=Action.WEBHOOK_DELIVERY_RETRIED,
            target_type="webhook",
            target_id=locked.webhook_id,
            details={"delivery_id": locked.id, "event_type": locked.event.type},
        )
        _hand_over([locked.id])
    return locked


def webhook_secret(webhook: Webhook) -> str:
    """The endpoint's signing secret (to sign with; never shown again)."""
    return crypto.unseal(webhook.secret_sealed, hashing_secret())


# --------------------------------------------------------------------------- delivery


def _due(now: datetime) -> Q:
    return Q(status=Status.PENDING, next_attempt_on__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def webhook_deliveries_due(*, now: datetime | None = None) -> int:
    """Periodic job: hand every due, untaken delivery to the task runner (retries whose
    time has come, and those whose first hand-over was lost); how many."""
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(_due(now))
        .order_by("next_attempt_on")
        .values_list("pk", flat=True)[:DUE_BATCH]
    )
    if ids:
        deliver = import_string(DELIVER_TASK)
        for delivery_id in ids:
            deliver.enqueue(delivery_id)
    return len(ids)


def _sign(webhook: Webhook, *, msg_id: str, when: datetime, body: str) -> str:
    signature: str = StandardWebhook(webhook_secret(webhook)).sign(msg_id, when, body)
    return signature


def webhook_delivery_attempt(*, delivery_id: str, now: datetime | None = None) -> str:
    """Make one attempt of ``delivery_id`` if it is due and no other worker holds it; its
    outcome: ``"delivered"``, ``"retry"``, ``"failed"`` or ``"skipped"`` (not due, taken,
    done). Safe to call twice: the second finds it taken or done."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=conf.get("WEBHOOK_CLAIM_SECONDS"))
    taken = WebhookDelivery.objects.filter(_due(now), pk=delivery_id).update(claimed_until=lease)
    if not taken:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("webhook", "event").get(pk=delivery_id)
    webhook = delivery.webhook
    if webhook.disabled_on is not None:
        return _record(delivery, now=now, lease=lease, status=None, response="Endpoint disabled.")
    body = json.dumps(delivery.event.payload, separators=(",", ":"))
    # Signed at the wall clock's time (receivers refuse a timestamp far from theirs), even
    # when ``now`` is a test's clock.
    sent_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "user-agent": "apikeys-webhooks/1",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": _sign(webhook, msg_id=delivery.event_id, when=sent_at, body=body),
    }
    try:
        answer = outbound.post(
            webhook.endpoint_url,
            body=body.encode("utf-8"),
            headers=headers,
            timeout=conf.get("WEBHOOK_TIMEOUT_SECONDS"),
            allow_private=_allow_private(),
        )
    except (outbound.TargetRefused, outbound.SendFailed) as exc:
        return _record(delivery, now=now, lease=lease, status=None, response=str(exc))
    return _record(delivery, now=now, lease=lease, status=answer.status, response=answer.body_start)


def _record(
    delivery: WebhookDelivery, *, now: datetime, lease: datetime, status: int | None, response: str
) -> str:
    """Write an attempt's outcome (only while this attempt still holds its lease)."""
    attempts = delivery.attempts + 1
    schedule = list(conf.get("WEBHOOK_RETRY_SCHEDULE"))
    fields: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_on": now,
        "last_status_code": status,
        "last_response": response[: outbound.RESPONSE_KEPT_BYTES],
        "claimed_until": None,
    }
    ok = status is not None and 200 <= status < 300
    webhook = delivery.webhook
    cutoff = now - timedelta(days=conf.get("WEBHOOK_DISABLE_AFTER_DAYS"))
    # This failure ends a run of failures as long as the limit: the endpoint is disabled.
    disabling = not ok and webhook.failing_since is not None and webhook.failing_since <= cutoff
    if ok:
        outcome = "delivered"
        fields.update(status=Status.DELIVERED, next_attempt_on=None)
    elif attempts <= len(schedule) and webhook.disabled_on is None and not disabling:
        outcome = "retry"
        fields.update(next_attempt_on=now + timedelta(seconds=schedule[attempts - 1]))
    else:
        outcome = "failed"
        fields.update(status=Status.FAILED, next_attempt_on=None)
    with transaction.atomic():
        written = WebhookDelivery.objects.filter(
            pk=delivery.pk, claimed_until=lease, status=Status.PENDING
        ).update(**fields)
        if written and webhook.disabled_on is None:
            _endpoint_health(webhook, ok=ok, now=now, cutoff=cutoff)
    return outcome if written else "skipped"


def _endpoint_health(webhook: Webhook, *, ok: bool, now: datetime, cutoff: datetime) -> None:
    if ok:
        Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=False).update(
            failing_since=None
        )
        return
    Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(failing_since=now)
    disabled = Webhook.objects.filter(
        pk=webhook.pk, disabled_on__isnull=True, failing_since__lte=cutoff
    ).update(disabled_on=now)
    if disabled:
        audit_event_record(
            actor=Actor.system(),
            action=Action.WEBHOOK_DISABLED,
            target_type="webhook",
            target_id=webhook.id,
            details={"failing_since": _iso(webhook.failing_since or now)},
        )
