"""clearportallinks: expired portal links are deleted after a grace period, recent and live
links are kept, and each purge that deletes anything is one audit event by the system."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apikeys import services
from apikeys.exceptions import ValidationFailed
from apikeys.models import AuditEvent
from portal.models import PortalLink
from portal.services import portal_link_create, portal_links_purge

pytestmark = pytest.mark.django_db


def link_expired(user, *, days_ago: float, used: bool = False) -> str:
    """A link for ``user`` that expired ``days_ago`` days ago (negative: still live)."""
    url = portal_link_create(
        user=user, base_url="https://keys.example.com", actor=services.Actor.system()
    )
    link = PortalLink.objects.latest("pk")
    expires_at = timezone.now() - timedelta(days=days_ago)
    PortalLink.objects.filter(pk=link.pk).update(
        expires_at=expires_at, used_at=expires_at - timedelta(minutes=1) if used else None
    )
    return urlsplit(url).path


def refusal(path: str) -> list[str]:
    """The codes of the messages a click on ``path`` is answered with."""
    response = Client().get(path)
    return [m.extra_tags for m in get_messages(response.wsgi_request)]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("clearportallinks", *args, stdout=out)
    return out.getvalue()


def test_links_expired_over_a_week_ago_go_and_the_others_stay(user):
    old_unused = link_expired(user, days_ago=8)
    link_expired(user, days_ago=30, used=True)
    recent = link_expired(user, days_ago=2)
    link_expired(user, days_ago=-0.001)  # still live
    kept = set(PortalLink.objects.filter(expires_at__gt=timezone.now() - timedelta(days=7)))

    assert run() == "Deleted 2 portal link(s) that expired over 7 day(s) ago.\n"

    assert set(PortalLink.objects.all()) == kept and len(kept) == 2
    [event] = AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINKS_PURGED)
    assert (event.actor_type, event.details["deleted"]) == ("system", 2)
    # A purged link is unknown; a kept one still says why it cannot be used.
    assert refusal(old_unused) == ["PORTAL_LINK_INVALID"]
    assert refusal(recent) == ["PORTAL_LINK_EXPIRED"]


def test_days_zero_deletes_every_expired_link_and_keeps_live_ones(user):
    link_expired(user, days_ago=0.01)
    link_expired(user, days_ago=-0.01)

    run("--days", "0")

    [live] = PortalLink.objects.all()
    assert live.expires_at > timezone.now()


def test_a_purge_that_deletes_nothing_records_nothing(user):
    link_expired(user, days_ago=1)

    assert run().startswith("Deleted 0 ")
    assert PortalLink.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PORTAL_LINKS_PURGED).exists()


@pytest.mark.parametrize("bad", ["-1", "seven", "1.5", "99999"])
def test_a_bad_number_of_days_is_refused_and_deletes_nothing(user, bad):
    link_expired(user, days_ago=100)
    with pytest.raises(CommandError, match="--days must be a whole number"):
        run("--days", bad)
    assert PortalLink.objects.count() == 1


def test_the_purge_service_refuses_a_negative_age_and_deletes_nothing(user):
    """The command checks ``--days`` itself; the service refuses a negative age on its own,
    which would otherwise reach into the future and delete links that still work."""
    link_expired(user, days_ago=-1)
    with pytest.raises(ValidationFailed) as refused:
        portal_links_purge(expired_for=timedelta(days=-2), actor=services.Actor.system())
    assert (refused.value.code, refused.value.field) == ("INVALID_FIELD", "expired_for")
    assert PortalLink.objects.count() == 1
