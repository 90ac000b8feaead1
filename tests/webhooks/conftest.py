from __future__ import annotations

import pytest

from apikeys import services
from tests.servers import cluster  # noqa: F401  (a fixture: the worker tests' PostgreSQL)
from tests.webhooks.receiver import Receiver


@pytest.fixture
def allow_private(settings):
    settings.APIKEYS = {**settings.APIKEYS, "WEBHOOKS_ALLOW_PRIVATE_TARGETS": True}


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def hook(db, allow_private, receiver, actor) -> services.CreatedWebhook:
    """A webhook subscribed to every event type, pointing at the loopback receiver."""
    from apikeys.models import WEBHOOK_EVENT_TYPES

    return services.webhook_create(
        endpoint_url=receiver.url, event_types=list(WEBHOOK_EVENT_TYPES), actor=actor
    )
