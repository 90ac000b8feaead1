"""Portal links in: the user, and the organization when a code is given, resolved."""

from __future__ import annotations

from typing import Any

from apikeys.api.serializers._base import (
    StrictCharField,
    StrictSerializer,
    org_in_body,
    user_in_body,
)


class PortalLinkIn(StrictSerializer):
    user_id = StrictCharField(max_length=200)
    organization_code = StrictCharField(required=False, allow_null=True, max_length=200)
    return_url = StrictCharField(required=False, allow_null=True, max_length=2000)
    sub_nav = StrictCharField(required=False, allow_null=True, max_length=64)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Adds ``user`` and ``organization`` (None when no code is given)."""
        user = user_in_body(attrs["user_id"], "user_id")
        org_code = attrs.get("organization_code") or None
        return {
            **attrs,
            "user": user,
            "organization": org_in_body(org_code, "organization_code") if org_code else None,
        }
