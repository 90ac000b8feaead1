"""Events and their delivery, through the services, to a real HTTP receiver on loopback.

The retry schedule is replayed with a clock the test holds (``now=``): no test here waits
for a delay."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import WebhookVerificationError

from apikeys import outbound, services
from apikeys.models import (
    WEBHOOK_EVENT_TYPES,
    ApiKey,
    AuditEvent,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from apikeys.services import webhooks
from tests.webhooks.receiver import Receiver

Status = WebhookDelivery.Status


class FakeTask:
    """Stands for apikeys.tasks.webhook_deliver: keeps what was enqueued."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []

    def enqueue(self, delivery_id: str) -> None:
        self.enqueued.append(delivery_id)


FAKE_TASK = FakeTask()


@pytest.fixture
def fake_task(monkeypatch) -> FakeTask:
    FAKE_TASK.enqueued.clear()
    monkeypatch.setattr(webhooks, "DELIVER_TASK", f"{__name__}.FAKE_TASK")
    return FAKE_TASK


def deliver_pending(now=None) -> list[str]:
    return [
        webhooks.webhook_delivery_attempt(delivery_id=pk, now=now)
        for pk in WebhookDelivery.objects.filter(status=Status.PENDING)
        .order_by("id")
        .values_list("pk", flat=True)
    ]


def test_every_event_type_arrives_signed_and_verifiable(hook, receiver, issued_key, actor):
    key = issued_key.api_key
    services.api_key_rotate(api_key=key, actor=actor)
    services.api_key_revoke(api_key=key, actor=actor)
    leaked = services.api_key_issue(
        name="Leaky", api=key.api, organization=key.organization, actor=actor
    )
    services.api_key_leak_report(key=leaked.plaintext, url=None, source=None, actor=actor)
    idle = services.api_key_issue(
        name="Idle", api=key.api, organization=key.organization, actor=actor
    )
    services.api_key_revoke(api_key=idle.api_key, actor=actor, reason="idle")
    soon = timezone.now() + timedelta(days=2)
    expiring = services.api_key_issue(
        name="Soon", api=key.api, organization=key.organization, expires_at=soon, actor=actor
    )
    assert webhooks.api_key_expiring_events_record() == 1
    assert webhooks.api_key_expired_events_record(now=soon + timedelta(seconds=1)) == 1
    webhooks.event_record(
        event_type="api_key.usage_exceeded", api_key=expiring.api_key, actor=actor
    )

    assert set(deliver_pending(now=soon + timedelta(minutes=1))) == {"delivered"}
    arrived = receiver.wait_for(WebhookDelivery.objects.count())
    secret = hook.secret
    payloads = [item.verified(secret) for item in arrived]
    assert {p["type"] for p in payloads} == set(WEBHOOK_EVENT_TYPES)
    for item, payload in zip(arrived, payloads, strict=True):
        assert item.headers["webhook-id"] == payload["id"]
        assert payload["id"].startswith("evt_")
        assert set(payload) == {"id", "type", "timestamp", "data"}
        assert set(payload["data"]) == {"api_key", "actor"}
        assert "key" not in payload["data"]["api_key"]
        assert payload["data"]["actor"] == {"type": "system", "id": None}
        assert item.headers["webhook-signature"].startswith("v1,")
    by_type = {p["type"]: p for p in payloads}
    assert by_type["api_key.revoked"]["data"]["api_key"]["status"] == "revoked"
    assert by_type["api_key.rotated"]["data"]["api_key"]["id"] == key.id
    assert by_type["api_key.leaked"]["data"]["api_key"]["id"] == leaked.api_key.id
    # A wrong secret does not verify.
    with pytest.raises(WebhookVerificationError):
        arrived[0].verified("whsec_" + "A" * 43 + "=")
    assert all(not p["data"]["api_key"].get("key") for p in payloads)
    for item in arrived:
        assert issued_key.plaintext.encode() not in item.body


def test_actor_is_named(hook, receiver, api, organization, user):
    services.api_key_issue(
        name="By a person", api=api, organization=organization, actor=services.Actor(user=user)
    )
    deliver_pending()
    payload = receiver.wait_for(1)[0].verified(hook.secret)
    assert payload["data"]["actor"] == {"type": "user", "id": user.public_id}


def test_only_subscribed_and_enabled_webhooks_get_an_event(
    allow_private, receiver, api, organization, actor
):
    created_only = services.webhook_create(
        endpoint_url=receiver.url, event_types=["api_key.created"], actor=actor
    ).webhook
    revoked_only = services.webhook_create(
        endpoint_url=receiver.url, event_types=["api_key.revoked"], actor=actor
    ).webhook
    disabled = services.webhook_create(
        endpoint_url=receiver.url, event_types=["api_key.created"], actor=actor
    ).webhook
    services.webhook_update(webhook=disabled, enabled=False, actor=actor)
    services.api_key_issue(name="K", api=api, organization=organization, actor=actor)
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == [created_only.id]
    assert not revoked_only.deliveries.exists()


def test_a_change_that_rolls_back_sends_nothing(hook, receiver, api, organization, actor):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.api_key_issue(name="Never", api=api, organization=organization, actor=actor)
        raise RuntimeError("the change fails after the event was recorded")
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert webhooks.webhook_deliveries_due() == 0
    assert receiver.received == []


def test_hand_over_after_commit_only(
    hook, api, organization, actor, django_capture_on_commit_callbacks, fake_task
):
    enqueued = fake_task.enqueued
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.api_key_issue(name="K", api=api, organization=organization, actor=actor)
        assert enqueued == []
    assert len(callbacks) == 1
    assert enqueued == [WebhookDelivery.objects.get().id]


def test_a_receiver_failing_three_times_gets_it_on_the_fourth_try(allow_private, issued_key, actor):
    with Receiver(answers=[500, 503, 404]) as receiver:
        created = services.webhook_create(
            endpoint_url=receiver.url, event_types=["api_key.rotated"], actor=actor
        )
        services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
        delivery = WebhookDelivery.objects.get()
        now = timezone.now()
        outcomes = []
        for _ in range(4):
            # Not due before its time: a worker that comes early does nothing.
            assert (
                webhooks.webhook_delivery_attempt(
                    delivery_id=delivery.id, now=now - timedelta(seconds=1)
                )
                == "skipped"
            )
            outcomes.append(webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=now))
            delivery.refresh_from_db()
            if delivery.next_attempt_on:
                now = delivery.next_attempt_on
        assert outcomes == ["retry", "retry", "retry", "delivered"]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            Status.DELIVERED,
            4,
            200,
        )
        arrived = receiver.wait_for(4)
        assert len({item.headers["webhook-id"] for item in arrived}) == 1
        assert arrived[-1].verified(created.secret)["type"] == "api_key.rotated"
        assert Webhook.objects.get().failing_since is None


def test_retries_grow_for_more_than_a_day_then_fail(allow_private, issued_key, actor):
    with Receiver(answers=[500] * 100) as receiver:
        services.webhook_create(
            endpoint_url=receiver.url, event_types=["api_key.revoked"], actor=actor
        )
        services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
        delivery = WebhookDelivery.objects.get()
        start = now = delivery.next_attempt_on
        delays = []
        while True:
            outcome = webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=now)
            delivery.refresh_from_db()
            if outcome != "retry":
                break
            delays.append(delivery.next_attempt_on - now)
            now = delivery.next_attempt_on
        assert outcome == "failed"
        assert delivery.status == Status.FAILED
        assert delivery.last_status_code == 500
        assert delays == sorted(delays) and delays[0] < delays[-1]
        assert now - start >= timedelta(hours=24)
        assert delivery.attempts == len(delays) + 1
        assert len(receiver.received) == delivery.attempts


def test_no_answer_is_a_failed_attempt(allow_private, issued_key, actor):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    services.webhook_create(
        endpoint_url=f"http://127.0.0.1:{port}/", event_types=["api_key.revoked"], actor=actor
    )
    services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
    assert deliver_pending() == ["retry"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status_code is None
    assert delivery.last_response


def test_two_workers_never_send_one_attempt_at_once(hook, issued_key, actor, monkeypatch):
    services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    delivery = WebhookDelivery.objects.get(event__type="api_key.rotated")
    second_worker: list[str] = []
    sends: list[str] = []

    def send(url, *, body, headers, timeout, allow_private):
        sends.append(headers["webhook-id"])
        # While this attempt is in flight, another worker tries the same delivery.
        second_worker.append(webhooks.webhook_delivery_attempt(delivery_id=delivery.id))
        return outbound.Answer(status=204, body_start="")

    monkeypatch.setattr(outbound, "post", send)
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id) == "delivered"
    assert second_worker == ["skipped"]
    assert len(sends) == 1


def test_an_attempt_whose_worker_died_is_sent_again_with_the_same_id(
    hook, receiver, issued_key, actor, fake_task
):
    services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    delivery = WebhookDelivery.objects.get(event__type="api_key.rotated")
    now = timezone.now()
    # A worker claimed it and died (its lease stays, nothing was recorded).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=now + timedelta(seconds=60))
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=now) == "skipped"
    webhooks.webhook_deliveries_due(now=now)
    assert delivery.id not in fake_task.enqueued  # still held: not handed over
    later = now + timedelta(seconds=61)
    webhooks.webhook_deliveries_due(now=later)
    assert delivery.id in fake_task.enqueued
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=later) == "delivered"
    rotated = [
        r for r in receiver.wait_for(1) if r.verified(hook.secret)["type"] == "api_key.rotated"
    ]
    assert rotated[0].headers["webhook-id"] == delivery.event_id


def test_a_late_outcome_of_a_lost_lease_is_not_written(hook, issued_key, actor, monkeypatch):
    services.api_key_rotate(api_key=issued_key.api_key, actor=actor)
    delivery = WebhookDelivery.objects.get(event__type="api_key.rotated")
    now = timezone.now()

    def slow_send(url, *, body, headers, timeout, allow_private):
        # Meanwhile the lease ran out and another worker delivered it.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.DELIVERED, claimed_until=None, attempts=1
        )
        return outbound.Answer(status=500, body_start="late")

    monkeypatch.setattr(outbound, "post", slow_send)
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=now) == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 1)


def test_an_endpoint_failing_for_five_days_is_disabled(allow_private, issued_key, actor):
    with Receiver(answers=[500] * 10) as receiver:
        webhook = services.webhook_create(
            endpoint_url=receiver.url, event_types=["api_key.revoked"], actor=actor
        ).webhook
        services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
        delivery = WebhookDelivery.objects.get()
        start = delivery.next_attempt_on
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=start) == "retry"
        webhook.refresh_from_db()
        assert webhook.failing_since == start and webhook.disabled_on is None
        # Still failing five days later (a second event's first attempt).
        later = start + timedelta(days=5)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_on=later)
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=later) == "failed"
        webhook.refresh_from_db()
        assert webhook.disabled_on == later
        assert AuditEvent.objects.filter(
            action=AuditEvent.Action.WEBHOOK_DISABLED, target_id=webhook.id
        ).exists()
        # A disabled endpoint gets no new events.
        services.api_key_issue(
            name="After",
            api=issued_key.api_key.api,
            organization=issued_key.api_key.organization,
            actor=actor,
        )
        assert webhook.deliveries.count() == 1


def test_one_success_ends_a_failure_run(allow_private, issued_key, actor):
    with Receiver(answers=[500]) as receiver:
        webhook = services.webhook_create(
            endpoint_url=receiver.url, event_types=["api_key.revoked"], actor=actor
        ).webhook
        services.api_key_revoke(api_key=issued_key.api_key, actor=actor)
        delivery = WebhookDelivery.objects.get()
        now = delivery.next_attempt_on
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id, now=now) == "retry"
        delivery.refresh_from_db()
        webhook.refresh_from_db()
        assert webhook.failing_since is not None
        outcome = webhooks.webhook_delivery_attempt(
            delivery_id=delivery.id, now=delivery.next_attempt_on
        )
        assert outcome == "delivered"
        webhook.refresh_from_db()
        assert webhook.failing_since is None


def test_manual_retry_sends_a_delivered_event_again(hook, receiver, issued_key, actor):
    deliver_pending()
    delivery = WebhookDelivery.objects.get()
    services.webhook_delivery_retry(delivery=delivery, actor=actor)
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING
    assert deliver_pending() == ["delivered"]
    arrived = receiver.wait_for(2)
    assert arrived[0].headers["webhook-id"] == arrived[1].headers["webhook-id"]


def test_expiring_and_expired_are_sent_once_per_key(hook, api, organization, actor):
    expires = timezone.now() + timedelta(days=3)
    key = services.api_key_issue(
        name="Short", api=api, organization=organization, expires_at=expires, actor=actor
    ).api_key
    far = services.api_key_issue(
        name="Long",
        api=api,
        organization=organization,
        expires_at=timezone.now() + timedelta(days=30),
        actor=actor,
    ).api_key
    assert webhooks.api_key_expiring_events_record() == 1
    assert webhooks.api_key_expiring_events_record() == 0
    after = expires + timedelta(minutes=1)
    assert webhooks.api_key_expired_events_record(now=after) == 1
    assert webhooks.api_key_expired_events_record(now=after) == 0
    # Twice through the one function (a race of two jobs): the constraint keeps one.
    assert webhooks.event_record(event_type="api_key.expired", api_key=key, actor=actor) is None
    assert WebhookEvent.objects.filter(api_key=key, type="api_key.expired").count() == 1
    assert not WebhookEvent.objects.filter(api_key=far, type="api_key.expiring").exists()
    # A revoked key does not expire.
    services.api_key_revoke(api_key=far, actor=actor)
    assert webhooks.api_key_expired_events_record(now=far.expires_at + timedelta(days=1)) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://127.0.0.1:8080/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/",
        "ftp://example.com/hook",
        "https://user:pass@example.com/hook",
        "not a url",
        "https:///nohost",
    ],
)
def test_private_and_malformed_targets_are_refused(db, url, actor):
    from apikeys import exceptions

    with pytest.raises(exceptions.InvalidEndpointUrl):
        services.webhook_create(endpoint_url=url, event_types=["api_key.created"], actor=actor)
    assert not Webhook.objects.exists()


def test_dns_rebinding_cannot_reach_a_private_address(
    db, api, organization, actor, monkeypatch, receiver
):
    answers = {"address": "93.184.215.14"}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host == "hooks.example.com":
            return real(answers["address"], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    port = receiver.server.server_address[1]
    services.webhook_create(
        endpoint_url=f"http://hooks.example.com:{port}/hooks",
        event_types=["api_key.created"],
        actor=actor,
    )
    # The name now answers with loopback, where the receiver listens.
    answers["address"] = "127.0.0.1"
    services.api_key_issue(name="K", api=api, organization=organization, actor=actor)
    assert deliver_pending() == ["retry"]
    delivery = WebhookDelivery.objects.get()
    assert "private" in delivery.last_response
    assert receiver.received == []


def test_the_secret_is_sealed_and_shown_once(db, allow_private, receiver, actor):
    created = services.webhook_create(
        endpoint_url=receiver.url, event_types=["api_key.created"], actor=actor
    )
    assert created.secret.startswith("whsec_")
    assert created.secret not in created.webhook.secret_sealed
    assert created.secret not in repr(created)
    assert webhooks.webhook_secret(Webhook.objects.get()) == created.secret
    for event in AuditEvent.objects.all():
        assert created.secret not in str(event.details)


def test_owner_deletion_sends_revoked_for_each_key(hook, issued_key, organization, actor):
    services.organization_delete(organization=organization, actor=actor)
    revoked = WebhookEvent.objects.filter(type="api_key.revoked")
    assert [e.api_key_id for e in revoked] == [issued_key.api_key.id]
    assert revoked[0].payload["data"]["api_key"]["status"] == "revoked"
    assert ApiKey.objects.get().status == ApiKey.Status.REVOKED


def test_deleting_an_owner_of_many_keys_records_their_events_in_a_few_statements(
    hook, api, organization, actor, django_assert_max_num_queries
):
    for number in range(20):
        services.api_key_issue(name=f"K{number}", api=api, organization=organization, actor=actor)
    WebhookDelivery.objects.all().delete()
    # However many keys: the same statements (locks, updates, bulk inserts), never per key.
    with django_assert_max_num_queries(40):
        services.organization_delete(organization=organization, actor=actor)
    assert WebhookEvent.objects.filter(type="api_key.revoked").count() == 20
    assert WebhookDelivery.objects.filter(event__type="api_key.revoked").count() == 20


def test_old_finished_history_is_pruned_but_once_per_key_events_stay(
    hook, issued_key, api, organization, actor
):
    expiring = services.api_key_issue(
        name="Soon",
        api=api,
        organization=organization,
        expires_at=timezone.now() + timedelta(days=1),
        actor=actor,
    ).api_key
    webhooks.api_key_expiring_events_record()
    deliver_pending()
    pending_event = webhooks.event_record(
        event_type="api_key.usage_exceeded", api_key=expiring, actor=actor
    )
    later = timezone.now() + timedelta(days=webhooks.HISTORY_DAYS + 1)
    assert webhooks.webhook_history_prune(now=later) > 0
    assert not WebhookDelivery.objects.exclude(event=pending_event).exists()
    assert WebhookDelivery.objects.filter(event=pending_event).count() == 1
    assert set(WebhookEvent.objects.values_list("type", flat=True)) == {
        "api_key.expiring",
        "api_key.usage_exceeded",
    }
