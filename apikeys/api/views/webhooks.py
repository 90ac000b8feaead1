"""Webhooks (platform-wide endpoints for key events) and their deliveries.

Rules:

- The signing secret is in the creation's answer only (sent with ``Cache-Control:
  no-store``); no read shows it again.
- A webhook id or delivery id in the path that does not exist is 404
  (``WEBHOOK_NOT_FOUND``, ``WEBHOOK_DELIVERY_NOT_FOUND``); a delivery is always addressed
  through its webhook.
- ``PATCH`` changes the fields given; ``enabled: true`` re-enables an endpoint that was
  disabled after failing.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import services
from apikeys.api import serializers as s
from apikeys.api.base import OK, ManagementApiView, list_body, paginate
from apikeys.api.errors import not_found
from apikeys.api.views._common import (
    ERRORS,
    OK_SCHEMA,
    PAGE_PARAMS,
    envelope,
    list_envelope,
    matches,
    secret_response,
    serialized_list,
    validated,
)
from apikeys.models import (
    WEBHOOK_DELIVERY_ID_PATTERN,
    WEBHOOK_ID_PATTERN,
    Webhook,
    WebhookDelivery,
)


def webhook_in_path(webhook_id: str) -> Webhook:
    found = (
        Webhook.objects.filter(pk=webhook_id).first()
        if re.fullmatch(WEBHOOK_ID_PATTERN, webhook_id)
        else None
    )
    if found is None:
        raise not_found("WEBHOOK_NOT_FOUND", "No webhook with that id.")
    return found


def delivery_in_path(webhook: Webhook, delivery_id: str) -> WebhookDelivery:
    found = (
        WebhookDelivery.objects.filter(webhook=webhook, pk=delivery_id).first()
        if re.fullmatch(WEBHOOK_DELIVERY_ID_PATTERN, delivery_id)
        else None
    )
    if found is None:
        raise not_found("WEBHOOK_DELIVERY_NOT_FOUND", "No delivery with that id.")
    return found


class WebhooksApi(ManagementApiView):
    required_scopes = {"GET": ["read:webhooks"], "POST": ["create:webhooks"]}
    query_parameters = {"GET": PAGE_PARAMS}

    @extend_schema(
        operation_id="list_webhooks",
        parameters=query_parameters["GET"],
        responses={200: list_envelope("WebhookList", "webhooks", s.WebhookOut), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        items, has_more = paginate(
            request,
            Webhook.objects.all(),
            order_field="id",
            cursor_value=lambda v: matches(WEBHOOK_ID_PATTERN, v),
        )
        return Response(list_body("webhooks", serialized_list(s.WebhookOut, items), has_more))

    @extend_schema(
        operation_id="create_webhook",
        request=s.WebhookCreateIn,
        responses={
            201: envelope(
                "WebhookCreated",
                {
                    "webhook": inline_serializer(
                        "WebhookSecret",
                        {
                            "id": serializers.CharField(),
                            "secret": serializers.CharField(
                                help_text="The signing secret (whsec_…), shown this once."
                            ),
                        },
                    )
                },
                "WEBHOOK_CREATED",
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(s.WebhookCreateIn, self.body())
        created = services.webhook_create(
            endpoint_url=data["endpoint_url"],
            event_types=data["event_types"],
            description=data.get("description", ""),
            actor=self.actor(),
        )
        return secret_response(
            {
                "code": "WEBHOOK_CREATED",
                "message": "Webhook created",
                "webhook": {"id": created.webhook.id, "secret": created.secret},
            },
            HTTPStatus.CREATED,
        )


class WebhookApi(ManagementApiView):
    required_scopes = {
        "GET": ["read:webhooks"],
        "PATCH": ["update:webhooks"],
        "DELETE": ["delete:webhooks"],
    }

    @extend_schema(
        operation_id="get_webhook",
        responses={200: envelope("WebhookRead", {"webhook": s.WebhookOut()}), **ERRORS},
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response({**OK, "webhook": s.WebhookOut(webhook_in_path(webhook_id)).data})

    @extend_schema(
        operation_id="update_webhook",
        request=s.WebhookUpdateIn,
        responses={200: envelope("WebhookUpdated", {"webhook": s.WebhookOut()}), **ERRORS},
    )
    def patch(self, request: Request, webhook_id: str) -> Response:
        webhook = webhook_in_path(webhook_id)
        data = validated(s.WebhookUpdateIn, self.body())
        updated = services.webhook_update(
            webhook=webhook,
            endpoint_url=data.get("endpoint_url"),
            event_types=data.get("event_types"),
            description=data.get("description"),
            enabled=data.get("enabled"),
            actor=self.actor(),
        )
        return Response({**OK, "webhook": s.WebhookOut(updated).data})

    @extend_schema(operation_id="delete_webhook", responses={200: OK_SCHEMA, **ERRORS})
    def delete(self, request: Request, webhook_id: str) -> Response:
        services.webhook_delete(webhook=webhook_in_path(webhook_id), actor=self.actor())
        return Response(OK)


class WebhookDeliveriesApi(ManagementApiView):
    required_scopes = {"GET": ["read:webhooks"]}
    query_parameters = {"GET": PAGE_PARAMS}

    @extend_schema(
        operation_id="list_webhook_deliveries",
        parameters=query_parameters["GET"],
        responses={
            200: list_envelope("WebhookDeliveryList", "deliveries", s.WebhookDeliveryOut),
            **ERRORS,
        },
    )
    def get(self, request: Request, webhook_id: str) -> Response:
        webhook = webhook_in_path(webhook_id)
        items, has_more = paginate(
            request,
            webhook.deliveries.select_related("event"),
            order_field="id",
            cursor_value=lambda v: matches(WEBHOOK_DELIVERY_ID_PATTERN, v),
        )
        return Response(
            list_body("deliveries", serialized_list(s.WebhookDeliveryOut, items), has_more)
        )


class WebhookDeliveryRetryApi(ManagementApiView):
    required_scopes = {"POST": ["update:webhooks"]}

    @extend_schema(
        operation_id="retry_webhook_delivery",
        request=None,
        responses={
            200: envelope("WebhookDeliveryRetried", {"delivery": s.WebhookDeliveryOut()}),
            **ERRORS,
        },
    )
    def post(self, request: Request, webhook_id: str, delivery_id: str) -> Response:
        delivery = delivery_in_path(webhook_in_path(webhook_id), delivery_id)
        retried = services.webhook_delivery_retry(delivery=delivery, actor=self.actor())
        return Response({**OK, "delivery": s.WebhookDeliveryOut(retried).data})
