"""``manage.py apikeys_revoke_idle``: revoke the keys idle past their owner's key policy's
``max_idle_days`` now (``apikeys.services.api_keys_revoke_idle``), each audited with reason
``idle`` and the system as actor. What the scheduled job runs; safe to run at any time, and
twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apikeys import services


class Command(BaseCommand):
    help = "Revoke the API keys not verified for longer than their key policy's max_idle_days."

    def handle(self, *args: Any, **options: Any) -> None:
        revoked = services.api_keys_revoke_idle()
        self.stdout.write(f"Revoked {revoked} idle key(s).")
