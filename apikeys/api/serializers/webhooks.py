"""Webhooks and their deliveries in and out. The URL and the event types are checked by the
service (``INVALID_ENDPOINT_URL``, ``INVALID_EVENT_TYPE``); here, only the JSON types."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.api.serializers._base import StrictCharField, StrictSerializer, iso
from apikeys.models import WEBHOOK_EVENT_TYPES, Webhook, WebhookDelivery


class StrictBooleanField(serializers.BooleanField):
    """true or false, and only those (no "yes", no 1)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


def _event_types(required: bool) -> serializers.ListField:
    return serializers.ListField(
        child=StrictCharField(max_length=64),
        allow_empty=False,
        max_length=len(WEBHOOK_EVENT_TYPES),
        required=required,
        help_text=f"Any of: {', '.join(WEBHOOK_EVENT_TYPES)}.",
    )


class WebhookCreateIn(StrictSerializer):
    endpoint_url = StrictCharField(max_length=2000, help_text="https://… (or http://)")
    event_types = _event_types(required=True)
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


class WebhookUpdateIn(StrictSerializer):
    endpoint_url = StrictCharField(required=False, max_length=2000)
    event_types = _event_types(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=200)
    enabled = StrictBooleanField(
        required=False, help_text="true re-enables an endpoint disabled after failing."
    )


class WebhookOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    endpoint_url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_on = serializers.CharField(
        allow_null=True, help_text="When it was disabled (after failing for days, or by hand)."
    )
    failing_since = serializers.CharField(allow_null=True)
    created_on = serializers.CharField()

    def to_representation(self, webhook: Webhook) -> dict[str, Any]:
        return {
            "id": webhook.id,
            "endpoint_url": webhook.endpoint_url,
            "event_types": list(webhook.event_types),
            "description": webhook.description,
            "enabled": webhook.is_enabled,
            "disabled_on": iso(webhook.disabled_on),
            "failing_since": iso(webhook.failing_since),
            "created_on": iso(webhook.created_on),
        }


class WebhookDeliveryOut(serializers.Serializer[Any]):
    id = serializers.CharField()
    event_id = serializers.CharField()
    event_type = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_attempt_on = serializers.CharField(allow_null=True)
    next_attempt_on = serializers.CharField(allow_null=True)
    created_on = serializers.CharField()

    def to_representation(self, delivery: WebhookDelivery) -> dict[str, Any]:
        return {
            "id": delivery.id,
            "event_id": delivery.event_id,
            "event_type": delivery.event.type,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_attempt_on": iso(delivery.last_attempt_on),
            "next_attempt_on": iso(delivery.next_attempt_on),
            "created_on": iso(delivery.created_on),
        }
