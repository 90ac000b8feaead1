"""Template helpers of the portal: how a time, a key's status and a duration read."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

register = template.Library()

_STATUS_LABELS = {"active": "Active", "revoked": "Revoked", "expired": "Expired"}


@register.simple_tag
def when(value: datetime | None, never: str = "Never") -> SafeString:
    """A ``<time>`` reading "5 minutes ago", with the exact UTC time on hover."""
    if value is None:
        return format_html('<span class="muted">{}</span>', never)
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    delta = timezone.now() - value
    if abs(delta.total_seconds()) < 60:
        text = "just now"
    elif delta.total_seconds() > 0:
        text = f"{timesince(value, depth=1)} ago"
    else:
        text = f"in {timesince(timezone.now(), value, depth=1)}"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, text)


@register.simple_tag
def status_badge(api_key: object) -> SafeString:
    """The key's status (active, revoked, expired) as a coloured badge with its word, so
    colour is never the only signal."""
    status = getattr(api_key, "effective_status", "active")
    return format_html(
        '<span class="badge badge--{}">{}</span>', status, _STATUS_LABELS.get(status, status)
    )


@register.filter
def duration(seconds: int) -> str:
    """``3600`` → "1 hour"; for grace periods and link lifetimes."""
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
