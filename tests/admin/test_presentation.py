"""How the admin writes things for people (issue 14, item 10): one date format, one empty
value, labels written as sentences, every list column visible at 1280 pixels."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin
from django.utils.formats import date_format

from apikeys.models import ApiKey, AuditEvent


def test_one_date_and_time_format_everywhere():
    moment = datetime(2026, 11, 30, 19, 9, tzinfo=UTC)
    assert {date_format(moment, name) for name in ("DATETIME_FORMAT", "SHORT_DATETIME_FORMAT")} == {
        "2026-11-30 19:09"
    }
    assert {date_format(moment, name) for name in ("DATE_FORMAT", "SHORT_DATE_FORMAT")} == {
        "2026-11-30"
    }


def test_audit_actions_are_labelled_as_people_write_them():
    for action in AuditEvent.Action:
        generated = action.name.replace(
            "_", " "
        ).title()  # what Django would show: "Api Key Issued"
        assert action.label != generated, action
        assert action.label[0].isupper() and " Api " not in f" {action.label} ", action
    assert AuditEvent.Action.API_KEY_ISSUED.label == "API key issued"
    assert ApiKey._meta.get_field("last_verified_ip").verbose_name == "last verified IP"


def test_the_admin_shows_an_empty_value_one_way_and_gives_lists_the_width():
    assert admin.site.empty_value_display == "—"
    assert admin.site.enable_nav_sidebar is False


def test_no_page_of_a_fresh_key_shows_none(admin_client, issued_key):
    """A key never rotated, verified or revoked: every empty field shows the empty mark."""
    import re

    response = admin_client.get(f"/admin/apikeys/apikey/{issued_key.api_key.pk}/change/")
    text = re.sub(r"<[^>]+>", " ", response.content.decode())
    assert response.status_code == 200
    assert not re.search(r"\bNone\b", text)
    assert "—" in text
