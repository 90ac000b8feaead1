"""The webhook admin: add (secret shown once), change, disable state, deliveries, retry."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from apikeys import services
from apikeys.admin.common import change_url
from apikeys.models import AuditEvent, Webhook, WebhookDelivery
from tests.admin.conftest import admin_client, staff_client  # noqa: F401  (fixtures)
from tests.formtokens import grant_form_token

pytestmark = pytest.mark.django_db

ADD = "/admin/apikeys/webhook/add/"


def add(client, receiver, **extra):
    return client.post(
        ADD,
        {
            "endpoint_url": receiver.url,
            "event_types": ["api_key.created", "api_key.rotated"],
            "description": "Billing",
            **extra,
        },
    )


def test_add_shows_the_secret_once(admin_client, allow_private, receiver):  # noqa: F811
    assert admin_client.get(ADD).status_code == HTTPStatus.OK
    response = add(admin_client, receiver)
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    webhook = Webhook.objects.get()
    secret = services.webhooks.webhook_secret(webhook)
    assert secret in page
    assert "no-store" in response["Cache-Control"]
    assert webhook.event_types == ["api_key.created", "api_key.rotated"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_CREATED).exists()
    for url in (change_url(webhook), "/admin/apikeys/webhook/"):
        assert secret not in admin_client.get(url).content.decode()


def test_a_resent_add_form_creates_nothing(admin_client, allow_private, receiver):  # noqa: F811
    token = grant_form_token(admin_client)
    first = add(admin_client, receiver, form_token=token)
    assert first.status_code == HTTPStatus.OK
    again = add(admin_client, receiver, form_token=token)
    assert "already been sent" in again.content.decode()
    assert Webhook.objects.count() == 1


def test_a_private_target_is_a_form_error(admin_client, receiver):  # noqa: F811
    response = add(admin_client, receiver)
    assert response.status_code == HTTPStatus.OK
    assert "INVALID_ENDPOINT_URL" in str(response.context["adminform"].form.errors.as_data()) or (
        "private" in response.content.decode()
    )
    assert not Webhook.objects.exists()


def test_change_disable_and_enable(admin_client, hook, actor):  # noqa: F811
    webhook = hook.webhook
    url = change_url(webhook)
    response = admin_client.post(
        url,
        {
            "endpoint_url": webhook.endpoint_url,
            "event_types": ["api_key.revoked"],
            "description": "changed",
            "enabled": "",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.content.decode()[-2000:]
    webhook.refresh_from_db()
    assert webhook.event_types == ["api_key.revoked"]
    assert webhook.disabled_on is not None
    page = admin_client.get(url).content.decode()
    assert "This endpoint is disabled" in page
    assert "Disabled on" in admin_client.get("/admin/apikeys/webhook/").content.decode()


def test_the_admin_says_when_failures_disabled_an_endpoint(admin_client, hook):  # noqa: F811
    now = timezone.now()
    Webhook.objects.filter(pk=hook.webhook.pk).update(
        failing_since=now - timedelta(days=5), disabled_on=now
    )
    page = admin_client.get(change_url(hook.webhook)).content.decode()
    assert "after failing since" in page


def test_deliveries_list_and_retry(admin_client, hook, issued_key, receiver):  # noqa: F811
    delivery = WebhookDelivery.objects.get()
    services.webhooks.webhook_delivery_attempt(delivery_id=delivery.id)
    listing = admin_client.get("/admin/apikeys/webhookdelivery/").content.decode()
    assert delivery.id in listing and "delivered" in listing
    page = admin_client.get(change_url(delivery)).content.decode()
    assert "Retry" in page and "ok" in page
    retry_url = f"/admin/apikeys/webhookdelivery/{delivery.id}/retry/"
    assert admin_client.get(retry_url).status_code == HTTPStatus.OK
    response = admin_client.post(retry_url)
    assert response.status_code == HTTPStatus.FOUND
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    # The webhook's page lists its deliveries.
    assert delivery.id in admin_client.get(change_url(hook.webhook)).content.decode()


def test_retry_needs_the_change_permission(staff_client, hook, issued_key):  # noqa: F811
    delivery = WebhookDelivery.objects.get()
    viewer = staff_client("view_webhookdelivery", "view_webhook")
    assert viewer.get(change_url(delivery)).status_code == HTTPStatus.OK
    response = viewer.post(f"/admin/apikeys/webhookdelivery/{delivery.id}/retry/")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert viewer.get(ADD).status_code == HTTPStatus.FORBIDDEN


def test_delete_through_the_service(admin_client, hook):  # noqa: F811
    url = f"/admin/apikeys/webhook/{hook.webhook.pk}/delete/"
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    assert not Webhook.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_DELETED).exists()


def test_the_list_action_retries_the_selected_deliveries(admin_client, hook, issued_key):  # noqa: F811
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
    response = admin_client.post(
        "/admin/apikeys/webhookdelivery/",
        {"action": "retry_selected", "_selected_action": [delivery.pk], "index": "0"},
    )
    assert response.status_code == HTTPStatus.FOUND
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_a_delivery_of_a_disabled_endpoint_is_not_retried(admin_client, hook, issued_key, actor):  # noqa: F811
    delivery = WebhookDelivery.objects.get()
    services.webhook_update(webhook=hook.webhook, enabled=False, actor=actor)
    retry_url = f"/admin/apikeys/webhookdelivery/{delivery.id}/retry/"
    assert "before retrying" in admin_client.get(retry_url).content.decode()
    admin_client.post(retry_url)
    admin_client.post(
        "/admin/apikeys/webhookdelivery/",
        {"action": "retry_selected", "_selected_action": [delivery.pk], "index": "0"},
    )
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_DELIVERY_RETRIED).exists()
    assert admin_client.get("/admin/apikeys/webhookdelivery/missing/retry/").status_code in (
        HTTPStatus.NOT_FOUND,
        HTTPStatus.FOUND,
    )
