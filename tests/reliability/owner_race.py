"""Deleting an owner while a key is being issued for it, on real PostgreSQL connections.

Run by ``test_deletion.py`` as ``python -m tests.reliability.owner_race`` in the production
settings against a throwaway database; prints one JSON object with what it observed.

Two orders, each with two threads (so two database connections):

- ``delete_first``: the delete has revoked the organization's keys and removed it, but not
  committed yet; a key is issued for it meanwhile. The issue must wait for the delete, then
  refuse with ``ORGANIZATION_NOT_FOUND``: no key may slip in after the revocation.
- ``issue_first``: a key has been issued but not committed yet; the organization is deleted
  meanwhile. The delete must wait for the issue, then revoke that key too.
- ``member_during_delete``: as ``delete_first``, with a member being added instead of a key
  issued: the add must wait, then refuse with ``ORGANIZATION_NOT_FOUND`` (not the
  foreign-key violation its insert would meet).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import django

# How long a thread that must wait is watched, to see that it does wait.
WATCH_SECONDS = 0.5


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    from django.db import connections

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as error:  # noqa: BLE001 (the outcome is reported, not raised)
            outcome["error"] = getattr(error, "code", type(error).__name__)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _hold_open(work: Callable[[], Any], started: threading.Event, release: threading.Event) -> Any:
    """Do ``work`` in a transaction that stays open until ``release``."""
    from django.db import transaction

    with transaction.atomic():
        value = work()
        started.set()
        release.wait(timeout=30)
    return value


def _during_delete(organization: Any, actor: Any, work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work`` while ``organization``'s delete is done but not committed; then let
    the delete commit. Says how each ended and whether ``work`` waited for the delete."""
    from apikeys import services

    started, release = threading.Event(), threading.Event()
    deleter, deleted = _in_thread(
        lambda: _hold_open(
            lambda: services.organization_delete(organization=organization, actor=actor),
            started,
            release,
        )
    )
    started.wait(timeout=30)
    worker, worked = _in_thread(work)
    time.sleep(WATCH_SECONDS)
    waited = worker.is_alive()
    release.set()
    deleter.join(timeout=30)
    worker.join(timeout=30)
    return {
        "delete": deleted.get("error", "ok"),
        "waited": waited,
        "work": worked.get("error", "ok"),
    }


def delete_first(api: Any, actor: Any) -> dict[str, Any]:
    from apikeys import services
    from apikeys.models import ApiKey, Organization

    organization = services.organization_create(name="Leaving", actor=actor)
    services.api_key_issue(name="Before", api=api, organization=organization, actor=actor)
    ran = _during_delete(
        organization,
        actor,
        lambda: (
            services.api_key_issue(
                name="During", api=api, organization=organization, actor=actor
            ).api_key.id
        ),
    )
    keys = ApiKey.objects.filter(org_code=organization.code)
    return {
        "delete": ran["delete"],
        "issue_waited": ran["waited"],
        "issue": ran["work"],
        "organization_exists": Organization.objects.filter(code=organization.code).exists(),
        "keys": keys.count(),
        "active_keys": keys.filter(status="active").count(),
    }


def issue_first(api: Any, actor: Any) -> dict[str, Any]:
    from apikeys import services
    from apikeys.models import ApiKey, AuditEvent

    organization = services.organization_create(name="Busy", actor=actor)
    started, release = threading.Event(), threading.Event()
    issuer, issued = _in_thread(
        lambda: _hold_open(
            lambda: (
                services.api_key_issue(
                    name="In flight", api=api, organization=organization, actor=actor
                ).api_key.id
            ),
            started,
            release,
        )
    )
    started.wait(timeout=30)
    deleter, deleted = _in_thread(
        lambda: services.organization_delete(organization=organization, actor=actor)
    )
    time.sleep(WATCH_SECONDS)
    delete_waited = deleter.is_alive()
    release.set()
    issuer.join(timeout=30)
    deleter.join(timeout=30)
    key_id = issued.get("value")
    key = ApiKey.objects.filter(pk=key_id).first()
    return {
        "issue": issued.get("error", "ok"),
        "delete_waited": delete_waited,
        "delete": deleted.get("error", "ok"),
        "key_status": key.status if key else None,
        "key_org_code_kept": bool(key and key.org_code == organization.code),
        "revoked_events": AuditEvent.objects.filter(
            target_id=key_id, action="api_key.revoked"
        ).count(),
    }


def member_during_delete(api: Any, actor: Any) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from apikeys import services
    from apikeys.models import Membership

    organization = services.organization_create(name="Closing", actor=actor)
    person = get_user_model().objects.create_user(
        username="late@example.com", email="late@example.com"
    )
    ran = _during_delete(
        organization,
        actor,
        lambda: services.membership_add(organization=organization, user=person, actor=actor).pk,
    )
    return {
        "delete": ran["delete"],
        "add_waited": ran["waited"],
        "add": ran["work"],
        "memberships": Membership.objects.filter(user=person).count(),
    }


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    from apikeys import services

    actor = services.Actor.system()
    api = services.api_create(name="Race", audience="https://race.example.com", actor=actor)
    print(
        json.dumps(
            {
                "delete_first": delete_first(api, actor),
                "issue_first": issue_first(api, actor),
                "member_during_delete": member_during_delete(api, actor),
            }
        )
    )


if __name__ == "__main__":
    main()
