"""The usage-limit fields of the admin's and the portal's key forms (one definition for
both doors): plain number and choice fields that :meth:`LimitFields.limits` turns into the
shapes the services take (``apikeys.limits``). The ranges are the services' own; the
services check them again."""

from __future__ import annotations

from typing import Any

from django import forms

from apikeys import limits
from apikeys.models import ApiKey

# A service's refusal of a limit, shown on the form field that holds it.
LIMIT_FIELD_FOR_ERROR = {
    "ratelimit.limit": "ratelimit_limit",
    "ratelimit.duration": "ratelimit_duration",
    "credits.remaining": "credits_remaining",
    "credits.refill.interval": "credits_refill_interval",
    "credits.refill.amount": "credits_refill_amount",
}


class LimitFields(forms.Form):
    """Rate limit and credits, each optional: empty means "no such limit"."""

    ratelimit_limit = forms.IntegerField(
        label="Rate limit: verifications",
        required=False,
        min_value=1,
        max_value=limits.RATELIMIT_MAX_LIMIT,
        help_text="At most this many valid verifications …",
    )
    ratelimit_duration = forms.IntegerField(
        label="Rate limit: per seconds",
        required=False,
        min_value=1,
        max_value=limits.RATELIMIT_MAX_DURATION,
        help_text="… in any span of this many seconds (1 to 86400). Empty: no rate limit.",
    )
    credits_remaining = forms.IntegerField(
        label="Credits",
        required=False,
        min_value=0,
        max_value=limits.CREDITS_MAX,
        help_text="Credits left; each valid verification uses its cost (1 unless the caller "
        "says). Empty: no credit limit.",
    )
    credits_refill_interval = forms.ChoiceField(
        label="Refill",
        required=False,
        choices=[
            ("", "Never"),
            ("daily", "Daily, at 00:00 UTC"),
            ("monthly", "Monthly, on the 1st"),
        ],
    )
    credits_refill_amount = forms.IntegerField(
        label="Refill to",
        required=False,
        min_value=1,
        max_value=limits.CREDITS_MAX,
        help_text="The credits set back at each refill.",
    )

    LIMIT_FIELDS = (
        "ratelimit_limit",
        "ratelimit_duration",
        "credits_remaining",
        "credits_refill_interval",
        "credits_refill_amount",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        limit, duration = cleaned.get("ratelimit_limit"), cleaned.get("ratelimit_duration")
        if (limit is None) != (duration is None) and not self.errors:
            self.add_error(
                "ratelimit_duration" if duration is None else "ratelimit_limit",
                "Give both the number of verifications and the seconds, or neither.",
            )
        interval, amount = (
            cleaned.get("credits_refill_interval"),
            cleaned.get("credits_refill_amount"),
        )
        if bool(interval) != (amount is not None) and not self.errors:
            self.add_error(
                "credits_refill_amount" if amount is None else "credits_refill_interval",
                "A refill needs both its interval and its amount.",
            )
        if interval and cleaned.get("credits_remaining") is None and not self.errors:
            self.add_error("credits_remaining", "A refill needs credits to refill.")
        return cleaned

    def limits(self) -> tuple[dict[str, int] | None, dict[str, Any] | None]:
        """(ratelimit, credits) as the services take them; None: no such limit."""
        data = self.cleaned_data
        ratelimit = (
            {"limit": data["ratelimit_limit"], "duration": data["ratelimit_duration"]}
            if data.get("ratelimit_limit") is not None
            else None
        )
        credits: dict[str, Any] | None = None
        if data.get("credits_remaining") is not None:
            credits = {"remaining": data["credits_remaining"]}
            if data.get("credits_refill_interval"):
                credits["refill"] = {
                    "interval": data["credits_refill_interval"],
                    "amount": data["credits_refill_amount"],
                }
        return ratelimit, credits

    @staticmethod
    def initial_of(api_key: ApiKey) -> dict[str, Any]:
        """A key's current limits, as this form's initial values."""
        return {
            "ratelimit_limit": api_key.ratelimit_limit,
            "ratelimit_duration": api_key.ratelimit_duration,
            "credits_remaining": api_key.credits_remaining,
            "credits_refill_interval": api_key.credits_refill_interval,
            "credits_refill_amount": api_key.credits_refill_amount,
        }


class ApiKeyLimitsForm(LimitFields):
    """Change a key's usage limits (the admin's and the portal's "Usage limits" page)."""
