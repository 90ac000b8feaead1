"""Webhooks in Chromium: a platform admin adds an endpoint in the admin and reads its secret
once; a customer rotates a key in the portal; the task worker delivers the event, signed,
to a receiver on loopback; the admin lists the delivery as delivered."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django_tasks_db.management.commands.db_worker import Worker
from playwright.sync_api import expect

from apikeys.models import Webhook, WebhookDelivery
from tests.browser.test_portal import create_key, portal_link, rotate_key, sign_in_with_link
from tests.factories import OrganizationFactory
from tests.portal.helpers import member_of
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery-staple-42"


def run_worker_until_idle() -> None:
    """django-tasks-db's worker (what ``manage.py db_worker`` runs), until the queue is empty."""
    Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="browser-test",
        excluded_queue_names=[],
    ).run()


def test_an_admin_adds_a_webhook_and_sees_a_portal_rotation_delivered(
    page: Any,
    browser: Any,
    live_server: Any,
    screenshot: Any,
    settings: Any,
    api: Any,
    read_users: Any,
) -> None:
    settings.APIKEYS = {**settings.APIKEYS, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": True}
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    with Receiver() as receiver:
        # The platform admin adds the endpoint and reads its secret, once.
        page.goto("/admin/login/")
        page.fill("input[name=username]", "root")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.goto("/admin/apikeys/webhook/add/")
        page.fill("#id_endpoint_url", receiver.url)
        page.get_by_label(re.compile(r"api_key\.rotated:")).check()
        screenshot("admin-webhook-add")
        page.click("input[name=_save]")
        expect(page.locator("h1")).to_have_text("Your new webhook's signing secret")
        secret = page.input_value("#secret-0")
        assert secret.startswith("whsec_")
        screenshot("admin-webhook-secret")
        webhook = Webhook.objects.get()
        page.goto(f"/admin/apikeys/webhook/{webhook.pk}/change/")
        assert secret not in page.content()

        # A customer rotates a key in the portal (a browser context of their own).
        organization = OrganizationFactory(name="Acme Corp")
        member = member_of(organization, "write", first_name="Ada", last_name="Lovelace")
        customer = browser.new_context(base_url=live_server.url).new_page()
        sign_in_with_link(
            customer,
            portal_link(
                live_server, member, organization=organization, sub_nav="organization_api_keys"
            ),
        )
        create_key(customer, name="Nightly export", api=api, scope_keys=["read:users"])
        customer.get_by_test_id("done").click()
        rotate_key(customer)
        customer.context.close()

        # The worker delivers it; the receiver verifies the signature.
        run_worker_until_idle()
        arrived = receiver.wait_for(1)
        payload = arrived[0].verified(secret)
        assert payload["type"] == "api_key.rotated"
        assert payload["data"]["actor"]["type"] == "user"

        # The admin lists the delivery as delivered.
        page.goto("/admin/apikeys/webhookdelivery/")
        delivery = WebhookDelivery.objects.get()
        row = page.locator("#result_list tr", has_text=delivery.id)
        expect(row).to_contain_text("Delivered")
        expect(row).to_contain_text("api_key.rotated")
        screenshot("admin-webhook-deliveries")
