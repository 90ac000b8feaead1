"""The portal's APIKEYS knobs: system checks, environment variables and the demo command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys.checks import check_portal_settings
from apikeys.models import AuditEvent
from portal.models import PortalLink
from portal.services import portal_link_redeem

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_default_portal_settings_pass_the_checks():
    assert check_portal_settings() == []


@pytest.mark.parametrize(
    "override",
    [
        {"PORTAL_RETURN_URL_HOSTS": ["app.example.com", ".example.org", "127.0.0.1", "[::1]"]},
        {"PORTAL_RETURN_URL_HOSTS": ("App.Example.com",)},
        {"PORTAL_PUBLIC_URL": "https://keys.example.com"},
        {"PORTAL_PUBLIC_URL": "http://127.0.0.1:8000/"},
        {"PORTAL_PLATFORM_NAME": "Acme Cloud"},
        {"PORTAL_LOGIN_MAX_FAILURES": 10, "PORTAL_LOGIN_LOCKOUT_SECONDS": 60},
    ],
)
def test_good_portal_settings_pass_the_checks(settings, override):
    settings.APIKEYS = {**settings.APIKEYS, **override}
    assert check_portal_settings() == []


@pytest.mark.parametrize(
    "override, error_id",
    [
        ({"PORTAL_RETURN_URL_HOSTS": ["*"]}, "apikeys.E101"),
        ({"PORTAL_RETURN_URL_HOSTS": [".*"]}, "apikeys.E101"),
        ({"PORTAL_RETURN_URL_HOSTS": ["https://app.example.com"]}, "apikeys.E101"),
        ({"PORTAL_RETURN_URL_HOSTS": ["app.example.com:443"]}, "apikeys.E101"),
        ({"PORTAL_RETURN_URL_HOSTS": "app.example.com"}, "apikeys.E101"),
        ({"PORTAL_RETURN_URL_HOSTS": [""]}, "apikeys.E101"),
        ({"PORTAL_PUBLIC_URL": "keys.example.com"}, "apikeys.E102"),
        ({"PORTAL_PUBLIC_URL": "https://keys.example.com/portal"}, "apikeys.E102"),
        ({"PORTAL_PUBLIC_URL": "javascript:alert(1)"}, "apikeys.E102"),
        ({"PORTAL_PLATFORM_NAME": ""}, "apikeys.E103"),
        ({"PORTAL_PLATFORM_NAME": "x" * 65}, "apikeys.E103"),
        ({"PORTAL_LOGIN_MAX_FAILURES": 0}, "apikeys.E104"),
        ({"PORTAL_LOGIN_MAX_FAILURES_PER_IP": "50"}, "apikeys.E104"),
        ({"PORTAL_LOGIN_LOCKOUT_SECONDS": True}, "apikeys.E104"),
    ],
)
def test_bad_portal_settings_are_flagged_at_start_up(settings, override, error_id):
    settings.APIKEYS = {**settings.APIKEYS, **override}
    assert error_id in {e.id for e in check_portal_settings()}


def test_portal_settings_come_from_the_environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("APIKEYS_PORTAL_")}
    env.update(
        DJANGO_SETTINGS_MODULE="project.test_settings",
        APIKEYS_PORTAL_RETURN_URL_HOSTS="app.example.com,.example.org",
        APIKEYS_PORTAL_PUBLIC_URL="https://keys.example.com",
        APIKEYS_PORTAL_PLATFORM_NAME="Acme Cloud",
        APIKEYS_PORTAL_LOGIN_MAX_FAILURES="7",
    )
    code = "import json, django; django.setup(); from apikeys import conf; print(json.dumps({k: conf.get(k) for k in ['PORTAL_RETURN_URL_HOSTS', 'PORTAL_PUBLIC_URL', 'PORTAL_PLATFORM_NAME', 'PORTAL_LOGIN_MAX_FAILURES', 'PORTAL_LOGIN_LOCKOUT_SECONDS']}))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "PORTAL_RETURN_URL_HOSTS": ["app.example.com", ".example.org"],
        "PORTAL_PUBLIC_URL": "https://keys.example.com",
        "PORTAL_PLATFORM_NAME": "Acme Cloud",
        "PORTAL_LOGIN_MAX_FAILURES": 7,
        "PORTAL_LOGIN_LOCKOUT_SECONDS": 900,
    }


def test_the_platform_name_is_shown_in_the_portal(client, settings, db):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_PLATFORM_NAME": "Acme Cloud"}
    page = client.get("/portal/login/").content.decode()
    assert "<title>Sign in · Acme Cloud</title>" in page


@pytest.mark.django_db
def test_the_portallink_command_prints_a_working_one_time_link(writer, acme):
    out = StringIO()
    call_command(
        "portallink",
        writer.email,
        "--org",
        acme.code,
        "--base-url",
        "http://127.0.0.1:8000",
        stdout=out,
    )
    url = out.getvalue().strip()
    assert url.startswith("http://127.0.0.1:8000/portal/link/")
    redeemed = portal_link_redeem(token=urlsplit(url).path.split("/")[-2])
    assert (redeemed.user, redeemed.organization) == (writer, acme)
    assert (
        AuditEvent.objects.get(action=AuditEvent.Action.PORTAL_LINK_CREATED).actor_type == "system"
    )


@pytest.mark.django_db
def test_the_portallink_command_reports_coded_refusals(user, globex):
    with pytest.raises(CommandError, match="USER_NOT_IN_ORGANIZATION"):
        call_command("portallink", user.email, "--org", globex.code, stdout=StringIO())
    with pytest.raises(CommandError, match="No user"):
        call_command("portallink", "nobody@example.com", stdout=StringIO())
    assert not PortalLink.objects.exists()
