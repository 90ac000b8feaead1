"""Usage charts: the daily read behind them (``selectors.api_key_usage_daily``) and the
drawing (``apikeys_usage`` template tags): UTC days oldest first with today included, zeros
for quiet days, bars proportional to the numbers, and a table holding the same numbers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from apikeys.selectors import DailyUsage, UsageSeries, api_key_usage_daily
from apikeys.templatetags.apikeys_usage import axis_top, compact, usage_bar
from tests.factories import ApiKeyUsageFactory
from tests.portal.helpers import issue

TODAY = date(2026, 11, 30)


def hour(day: date, at: int) -> datetime:
    return datetime(day.year, day.month, day.day, at, tzinfo=UTC)


def series(*pairs: tuple[int, int], last: date = TODAY) -> UsageSeries:
    first = last - timedelta(days=len(pairs) - 1)
    return UsageSeries(
        tuple(DailyUsage(first + timedelta(days=n), v, r) for n, (v, r) in enumerate(pairs))
    )


def render(usage: UsageSeries) -> str:
    return Template("{% load apikeys_usage %}{% usage_chart usage %}").render(
        Context({"usage": usage})
    )


# --------------------------------------------------------------------------- the read


@pytest.mark.django_db
def test_daily_usage_sums_the_hours_of_each_utc_day_and_fills_quiet_days_with_zeros(api, user):
    key = issue(api=api, name="Busy", user=user).api_key
    ApiKeyUsageFactory(api_key=key, start=hour(TODAY, 0), verified=3, rate_limited=1)
    ApiKeyUsageFactory(api_key=key, start=hour(TODAY, 23), verified=2, usage_exceeded=1, revoked=1)
    ApiKeyUsageFactory(
        api_key=key, start=hour(TODAY - timedelta(days=29), 0), expired=2, wrong_audience=3
    )
    # Outside the window: the day before the first, and tomorrow.
    ApiKeyUsageFactory(api_key=key, start=hour(TODAY - timedelta(days=30), 23), verified=100)
    ApiKeyUsageFactory(api_key=key, start=hour(TODAY + timedelta(days=1), 0), verified=100)

    usage = api_key_usage_daily(api_key_ids=[key.pk], today=TODAY)[key.pk]

    assert [d.day for d in usage.days] == [TODAY - timedelta(days=29 - n) for n in range(30)]
    assert usage.days[-1] == DailyUsage(TODAY, valid=5, refused=3)
    assert usage.days[0] == DailyUsage(TODAY - timedelta(days=29), valid=0, refused=5)
    assert all(d.total == 0 for d in usage.days[1:-1])
    assert (usage.valid, usage.refused, usage.total) == (5, 8, 13)


@pytest.mark.django_db
def test_daily_usage_of_many_keys_is_one_query_and_only_for_the_keys_asked(api, user):
    keys = [issue(api=api, name=f"Key {n}", user=user).api_key for n in range(5)]
    for n, key in enumerate(keys):
        ApiKeyUsageFactory(api_key=key, start=hour(TODAY, 12), verified=n + 1)
    other = issue(api=api, name="Not asked", user=user).api_key
    ApiKeyUsageFactory(api_key=other, start=hour(TODAY, 12), verified=99)

    with CaptureQueriesContext(connection) as queries:
        usage = api_key_usage_daily(api_key_ids=[k.pk for k in keys], today=TODAY)
    assert len(queries) == 1
    assert set(usage) == {k.pk for k in keys}
    assert [usage[k.pk].valid for k in keys] == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_daily_usage_ends_today_in_utc_by_default(api, user):
    key = issue(api=api, user=user).api_key
    usage = api_key_usage_daily(api_key_ids=[key.pk])[key.pk]
    assert usage.days[-1].day == datetime.now(UTC).date()
    assert len(usage.days) == 30 and usage.total == 0


@pytest.mark.django_db
def test_no_keys_asked_is_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_key_usage_daily(api_key_ids=[]) == {}


def test_combined_series_add_up_day_by_day():
    total = UsageSeries.combined([series((1, 0), (2, 3)), series((10, 1), (0, 0))])
    assert [(d.valid, d.refused) for d in total.days] == [(11, 1), (2, 3)]
    assert total.days[-1].day == TODAY


# --------------------------------------------------------------------------- the drawing


def bar_heights(html: str, kind: str) -> dict[str, float]:
    """``{day: height}`` of the ``valid`` or ``refused`` rects."""
    heights = {}
    for day, body in re.findall(
        r'<g class="usage__day" data-day="([^"]+)">(.*?)</g>', html, re.DOTALL
    ):
        match = re.search(rf'usage__bar--{kind}"[^>]* height="([0-9.]+)"', body)
        if match:
            heights[day] = float(match.group(1))
    return heights


def table_rows(html: str) -> list[tuple[str, ...]]:
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    return [
        (day, *re.findall(r'<td class="usage__num">([^<]*)</td>', row))
        for day, row in re.findall(r'<time datetime="([^"]+)">.*?</th>(.*?)</tr>', body, re.DOTALL)
    ]


def test_bar_heights_are_proportional_to_the_numbers():
    html = render(series((0, 0), (100, 0), (50, 25), (200, 200)))
    valid, refused = bar_heights(html, "valid"), bar_heights(html, "refused")
    # The axis's top is 400 (the largest day's total), so 100 is a quarter of the height.
    assert valid == {"2026-11-28": 25.0, "2026-11-29": 12.5, "2026-11-30": 50.0}
    assert refused == {"2026-11-29": 6.25, "2026-11-30": 50.0}
    # Refused sits on top of valid: its bottom is valid's top.
    assert 'y="87.5" width="6" height="12.5"' in html  # valid of Nov 29
    assert 'y="81.25" width="6" height="6.25"' in html  # refused of Nov 29


def test_a_day_of_zeros_draws_no_bar_but_keeps_its_place_and_its_table_row():
    html = render(series((0, 0), (7, 0), (0, 0)))
    assert html.count('class="usage__day"') == 3
    assert html.count("usage__bar--") == 1
    assert table_rows(html)[0] == ("2026-11-28", "0", "0", "0")


def test_the_table_holds_the_same_numbers_as_the_data_in_utc_day_order_up_to_today():
    data = [(n * 1000, n % 3) for n in range(30)]
    usage = series(*data)
    html = render(usage)
    rows = table_rows(html)
    assert [row[0] for row in rows] == [d.day.isoformat() for d in usage.days]
    assert rows[-1][0] == TODAY.isoformat()
    assert rows == [
        (d.day.isoformat(), f"{d.valid:,}", f"{d.refused:,}", f"{d.total:,}") for d in usage.days
    ]
    days = re.findall(r'data-day="([^"]+)"', html)
    assert days == sorted(days) and days[-1] == TODAY.isoformat()
    footer = html.split("<tfoot>")[1]
    assert f"{usage.valid:,}" in footer and f"{usage.refused:,}" in footer


def test_the_chart_is_one_labelled_image_with_a_legend_axis_labels_and_a_table():
    html = render(series(*[(10, 1)] * 30))
    assert re.search(
        r'<svg class="usage__svg" role="img" aria-labelledby="usage-title usage-desc"', html
    )
    assert 'viewBox="0 0 300 100"' in html and 'width="100%"' in html
    assert (
        '<title id="usage-title">' in html
        and '<desc id="usage-desc">300 valid and 30 refused' in html
    )
    assert 'data-testid="usage-valid">300<' in html and 'data-testid="usage-refused">30<' in html
    # y axis: 0, the middle and the top (a day's 11 rounds up to 20); five dates, today's last.
    assert (
        '<div class="usage__y" aria-hidden="true"><span>20</span><span>10</span><span>0</span>'
        in html
    )
    labels = re.findall(r"<span><span>([^<]+)</span></span>", html)
    assert labels == ["Nov 2", "Nov 9", "Nov 16", "Nov 23", "Nov 30"]
    assert "<summary>Show as table</summary>" in html and 'data-testid="usage-table"' in html
    assert "usage-empty" not in html
    assert "style=" not in html  # the portal's CSP allows no inline style


def test_a_key_without_any_use_shows_an_empty_state_instead_of_a_chart():
    html = render(series(*[(0, 0)] * 30))
    assert 'data-testid="usage-empty"' in html and "No verifications in the last 30 days" in html
    assert "<svg" not in html and "usage-table" not in html


@pytest.mark.parametrize(
    ("largest", "top"),
    [(1, 2), (2, 2), (3, 4), (5, 6), (9, 10), (11, 20), (399, 400), (401, 600), (12_345, 20_000)],
)
def test_the_axis_top_is_a_round_number_at_or_above_the_largest_day(largest, top):
    assert axis_top(largest) == top


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (950, "950"), (1000, "1k"), (1200, "1.2k"), (20_000, "20k"), (1_500_000, "1.5M")],
)
def test_axis_labels_are_compact(value, text):
    assert compact(value) == text


def test_a_row_bar_is_as_long_as_its_share_of_the_largest_total():
    html = str(usage_bar(series((30, 10)), 80))
    assert 'class="usage__bar--valid" width="37.5"' in html
    assert 'class="usage__bar--refused" x="37.5" width="12.5"' in html
    assert "30 valid</span> <span>10 refused" in html
    assert "No verifications" in str(usage_bar(series((0, 0)), 80))
