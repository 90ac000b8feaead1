"""Usage charts of the portal and the admin, drawn on the server: inline SVG, no script.

- ``{% usage_chart series %}``: a key's (or several keys' summed) last days as stacked bars,
  valid below refused, with axis labels, a legend, and the same numbers as a table for
  screen readers (the SVG is one ``role="img"`` with a title and a summary).
- ``{% usage_bar series largest %}``: one row's total as a small stacked bar, as long as the
  row's share of the largest total on the page, with its numbers as text.

The SVG is stretched to its box (``preserveAspectRatio="none"``: bars are rectangles, so
nothing distorts) and every word is HTML beside it, so labels keep their size from a phone
to a wide screen. No inline styles: the portal's Content-Security-Policy allows none; the
colours come from ``apikeys/usage.css`` and its host page's variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apikeys.selectors import DailyUsage, UsageSeries

register = template.Library()

# The SVG's own units: a 10-wide slot per day, 100 high.
SLOT = 10
BAR = 6
HEIGHT = 100
# A date under every 7th bar, counted back from today's: never crowded, today always named.
LABEL_EVERY = 7


def thousands(value: int) -> str:
    return f"{value:,}"


def compact(value: int) -> str:
    """An axis label: ``950``, ``1.2k``, ``12k``, ``1.5M``."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            text = f"{value / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(value)


def axis_top(largest: int) -> int:
    """The y axis's top: the smallest of 2, 4, 6, 8, 10 × 10ⁿ that holds ``largest``, so
    that the middle line (half of it) is a round whole number too."""
    magnitude = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * magnitude >= largest:
                return step * magnitude
        magnitude *= 10


def day_label(day: Any) -> str:
    return f"{day:%b} {day.day}"


def _unit(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Bar:
    """One day's column, in the SVG's units (y grows downwards)."""

    usage: DailyUsage
    x: str
    hit_x: str
    valid_y: str
    valid_height: str
    refused_y: str
    refused_height: str
    label: str
    tooltip: str


def chart_bars(series: UsageSeries, top: int) -> list[Bar]:
    bars = []
    last = len(series.days) - 1
    for index, usage in enumerate(series.days):
        valid = usage.valid / top * HEIGHT
        refused = usage.refused / top * HEIGHT
        bars.append(
            Bar(
                usage=usage,
                x=_unit(index * SLOT + (SLOT - BAR) / 2),
                hit_x=_unit(index * SLOT),
                valid_y=_unit(HEIGHT - valid),
                valid_height=_unit(valid),
                refused_y=_unit(HEIGHT - valid - refused),
                refused_height=_unit(refused),
                label=day_label(usage.day) if (last - index) % LABEL_EVERY == 0 else "",
                tooltip=(
                    f"{day_label(usage.day)}: {thousands(usage.valid)} valid, "
                    f"{thousands(usage.refused)} refused"
                ),
            )
        )
    return bars


@register.inclusion_tag("apikeys/usage_chart.html")
def usage_chart(series: UsageSeries, title: str = "", chart_id: str = "usage") -> dict[str, Any]:
    """The chart and its table; an empty-state sentence instead when every day is zero."""
    days = len(series.days)
    title = title or f"Last {days} days"
    largest = max((d.total for d in series.days), default=0)
    top = axis_top(largest) if largest else 0
    first, last = (series.days[0].day, series.days[-1].day) if days else (None, None)
    return {
        "series": series,
        "title": title,
        "chart_id": chart_id,
        "days": days,
        "empty": largest == 0,
        "first": first,
        "last": last,
        "valid": thousands(series.valid),
        "refused": thousands(series.refused),
        "total": thousands(series.total),
        "top": compact(top),
        "middle": compact(top // 2),
        "bars": chart_bars(series, top) if largest else [],
        "width": days * SLOT,
        "slot": SLOT,
        "bar_width": BAR,
        "height": HEIGHT,
        "rows": [
            (d.day, thousands(d.valid), thousands(d.refused), thousands(d.total))
            for d in series.days
        ],
    }


@register.simple_tag
def usage_bar(series: UsageSeries, largest: int) -> SafeString:
    """One key's total in a list: a bar as long as its share of ``largest``, then words."""
    if series.total == 0:
        return format_html(
            '<span class="usage-row"><span class="usage-row__numbers muted">{}</span></span>',
            "No verifications",
        )
    scale = 100 / largest if largest else 0
    valid = series.valid * scale
    refused = series.refused * scale
    return format_html(
        '<span class="usage-row">'
        '<svg class="usage-row__bar" viewBox="0 0 100 8" preserveAspectRatio="none" '
        'aria-hidden="true" focusable="false">'
        '<rect class="usage-row__track" width="100" height="8"></rect>'
        '<rect class="usage__bar--valid" width="{}" height="8"></rect>'
        '<rect class="usage__bar--refused" x="{}" width="{}" height="8"></rect>'
        "</svg>"
        '<span class="usage-row__numbers"><span>{} valid</span> <span>{} refused</span></span>'
        "</span>",
        _unit(valid),
        _unit(valid),
        _unit(refused),
        thousands(series.valid),
        thousands(series.refused),
    )
