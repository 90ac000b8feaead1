"""The Management API's webhook endpoints: every operation, bad input (400 naming the
field), scope refusals (403), unknown ids (404), and the event body's key object."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from apikeys import services
from apikeys.models import Webhook, WebhookDelivery
from apikeys.services import webhooks
from tests.api.conftest import error_codes

pytestmark = pytest.mark.django_db

ALL = ["read:webhooks", "create:webhooks", "update:webhooks", "delete:webhooks"]


@pytest.fixture
def client(make_client):
    return make_client(ALL)


@pytest.fixture
def created(client, allow_private, receiver):
    response = client.post(
        "/api/v1/webhooks",
        {"endpoint_url": receiver.url, "event_types": ["api_key.rotated"], "description": "CI"},
        format="json",
    )
    assert response.status_code == HTTPStatus.CREATED, response.json()
    return response


def fields(response):
    return [e.get("field") for e in response.json()["errors"]]


def test_create_shows_the_secret_once(created, client):
    body = created.json()
    assert body["code"] == "WEBHOOK_CREATED"
    assert body["webhook"]["id"].startswith("wh_")
    assert body["webhook"]["secret"].startswith("whsec_")
    assert created["Cache-Control"] == "no-store"
    webhook_id = body["webhook"]["id"]
    read = client.get(f"/api/v1/webhooks/{webhook_id}").json()
    assert body["webhook"]["secret"] not in str(read)
    assert read["webhook"] == {
        "id": webhook_id,
        "endpoint_url": Webhook.objects.get().endpoint_url,
        "event_types": ["api_key.rotated"],
        "description": "CI",
        "enabled": True,
        "disabled_on": None,
        "failing_since": None,
        "created_on": read["webhook"]["created_on"],
    }
    listed = client.get("/api/v1/webhooks").json()
    assert [w["id"] for w in listed["webhooks"]] == [webhook_id]
    assert listed["has_more"] is False
    assert body["webhook"]["secret"] not in str(listed)


def test_update_and_delete(created, client, receiver):
    webhook_id = created.json()["webhook"]["id"]
    response = client.patch(
        f"/api/v1/webhooks/{webhook_id}",
        {"event_types": ["api_key.created", "api_key.revoked"], "enabled": False},
        format="json",
    )
    assert response.status_code == HTTPStatus.OK
    assert response.json()["webhook"]["event_types"] == ["api_key.created", "api_key.revoked"]
    assert response.json()["webhook"]["enabled"] is False
    response = client.patch(f"/api/v1/webhooks/{webhook_id}", {"enabled": True}, format="json")
    assert response.json()["webhook"]["enabled"] is True
    response = client.delete(f"/api/v1/webhooks/{webhook_id}")
    assert response.json() == {"code": "OK", "message": "Success"}
    assert not Webhook.objects.exists()
    assert client.get(f"/api/v1/webhooks/{webhook_id}").status_code == HTTPStatus.NOT_FOUND


def test_deliveries_and_retry(created, client, issued_key, receiver):
    webhook_id = created.json()["webhook"]["id"]
    services.api_key_rotate(api_key=issued_key.api_key, actor=services.Actor.system())
    delivery = WebhookDelivery.objects.get()
    listed = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries").json()
    assert listed["deliveries"][0]["id"] == delivery.id
    assert listed["deliveries"][0]["status"] == "pending"
    assert listed["deliveries"][0]["event_type"] == "api_key.rotated"
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id) == "delivered"
    item = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries").json()["deliveries"][0]
    assert {k: item[k] for k in ("status", "attempts", "last_status_code")} == {
        "status": "delivered",
        "attempts": 1,
        "last_status_code": 200,
    }
    assert item["next_attempt_on"] is None
    response = client.post(f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery.id}/retry")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["delivery"]["status"] == "pending"
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id) == "delivered"
    assert len(receiver.wait_for(2)) == 2


def test_the_event_carries_the_key_as_the_api_reads_it(
    created, client, make_client, issued_key, receiver
):
    services.api_key_rotate(api_key=issued_key.api_key, actor=services.Actor.system())
    delivery = WebhookDelivery.objects.get()
    webhooks.webhook_delivery_attempt(delivery_id=delivery.id)
    secret = created.json()["webhook"]["secret"]
    payload = receiver.wait_for(1)[0].verified(secret)
    reader = make_client(["read:api_keys"])
    read = reader.get(f"/api/v1/api_keys/{issued_key.api_key.id}").json()["api_key"]
    assert payload["data"]["api_key"] == read


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"event_types": ["api_key.created"]}, "endpoint_url", None),
        ({"endpoint_url": "https://example.com/h"}, "event_types", None),
        ({"endpoint_url": 5, "event_types": ["api_key.created"]}, "endpoint_url", None),
        (
            {"endpoint_url": "https://example.com/h", "event_types": "api_key.created"},
            "event_types",
            None,
        ),
        ({"endpoint_url": "https://example.com/h", "event_types": []}, "event_types", None),
        ({"endpoint_url": "https://example.com/h", "event_types": [1]}, "event_types", None),
        (
            {"endpoint_url": "https://example.com/h", "event_types": ["api_key.nope"]},
            "event_types",
            "INVALID_EVENT_TYPE",
        ),
        (
            {"endpoint_url": "http://127.0.0.1/h", "event_types": ["api_key.created"]},
            "endpoint_url",
            "INVALID_ENDPOINT_URL",
        ),
        (
            {"endpoint_url": "ftp://example.com/h", "event_types": ["api_key.created"]},
            "endpoint_url",
            "INVALID_ENDPOINT_URL",
        ),
        (
            {"endpoint_url": "http://169.254.169.254/", "event_types": ["api_key.created"]},
            "endpoint_url",
            "INVALID_ENDPOINT_URL",
        ),
        (
            {"endpoint_url": "https://example.com/h", "event_types": ["api_key.created"], "x": 1},
            "x",
            "UNKNOWN_FIELD",
        ),
        (
            {
                "endpoint_url": "https://example.com/h",
                "event_types": ["api_key.created"],
                "description": 3,
            },
            "description",
            None,
        ),
    ],
)
def test_bad_create_bodies(client, body, field, code):
    response = client.post("/api/v1/webhooks", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert any(f == field or f.startswith(f"{field}.") for f in fields(response))
    if code:
        assert code in error_codes(response)
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["nope"]}, "event_types"),
        ({"endpoint_url": "http://localhost/"}, "endpoint_url"),
        ({"endpoint_url": None}, "endpoint_url"),
        ({"secret": "whsec_x"}, "secret"),
    ],
)
def test_bad_update_bodies(created, client, body, field, settings):
    settings.APIKEYS = {**settings.APIKEYS, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": False}
    webhook_id = created.json()["webhook"]["id"]
    response = client.patch(f"/api/v1/webhooks/{webhook_id}", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert field in fields(response)
    assert Webhook.objects.get().event_types == ["api_key.rotated"]


def test_unknown_ids_are_404(client, created, issued_key):
    webhook_id = created.json()["webhook"]["id"]
    missing = "wh_" + "0" * 32
    for method, path in [
        ("get", f"/api/v1/webhooks/{missing}"),
        ("patch", f"/api/v1/webhooks/{missing}"),
        ("delete", f"/api/v1/webhooks/{missing}"),
        ("get", f"/api/v1/webhooks/{missing}/deliveries"),
        ("get", "/api/v1/webhooks/not-an-id"),
        ("post", f"/api/v1/webhooks/{missing}/deliveries/whd_{'0' * 32}/retry"),
    ]:
        response = getattr(client, method)(path, {}, format="json")
        assert response.status_code == HTTPStatus.NOT_FOUND, path
        assert error_codes(response) == ["WEBHOOK_NOT_FOUND"]
    response = client.post(f"/api/v1/webhooks/{webhook_id}/deliveries/whd_{'0' * 32}/retry")
    assert error_codes(response) == ["WEBHOOK_DELIVERY_NOT_FOUND"]
    # A delivery of another webhook is not found under this one.
    other = services.webhook_create(
        endpoint_url=Webhook.objects.get().endpoint_url,
        event_types=["api_key.rotated"],
        actor=services.Actor.system(),
    ).webhook
    services.api_key_rotate(api_key=issued_key.api_key, actor=services.Actor.system())
    foreign = WebhookDelivery.objects.get(webhook=other)
    response = client.post(f"/api/v1/webhooks/{webhook_id}/deliveries/{foreign.id}/retry")
    assert response.status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("get", "/api/v1/webhooks", "read:webhooks"),
        ("post", "/api/v1/webhooks", "create:webhooks"),
        ("get", "/api/v1/webhooks/{id}", "read:webhooks"),
        ("patch", "/api/v1/webhooks/{id}", "update:webhooks"),
        ("delete", "/api/v1/webhooks/{id}", "delete:webhooks"),
        ("get", "/api/v1/webhooks/{id}/deliveries", "read:webhooks"),
        ("post", "/api/v1/webhooks/{id}/deliveries/whd_{zeros}/retry", "update:webhooks"),
    ],
)
def test_each_operation_needs_its_scope(make_client, created, method, path, scope):
    webhook_id = created.json()["webhook"]["id"]
    others = make_client([s for s in ALL if s != scope] + ["read:api_keys"])
    url = path.format(id=webhook_id, zeros="0" * 32)
    response = getattr(others, method)(url, {"description": "x"}, format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert scope in str(response.json())
    assert Webhook.objects.count() == 1
    only = make_client([scope])
    response = getattr(only, method)(url, {}, format="json")
    assert response.status_code != HTTPStatus.FORBIDDEN


def test_webhook_scopes_are_grantable():
    from apikeys.models import MANAGEMENT_SCOPES

    assert set(ALL) <= set(MANAGEMENT_SCOPES)


def test_a_delivery_of_a_disabled_webhook_is_not_retried(created, client, issued_key):
    webhook_id = created.json()["webhook"]["id"]
    services.api_key_rotate(api_key=issued_key.api_key, actor=services.Actor.system())
    delivery = WebhookDelivery.objects.get()
    client.patch(f"/api/v1/webhooks/{webhook_id}", {"enabled": False}, format="json")
    response = client.post(f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery.id}/retry")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert error_codes(response) == ["WEBHOOK_DISABLED"]
    # Its pending delivery is not sent: the attempt records why.
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.id) == "failed"
