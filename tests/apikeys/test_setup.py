"""Settings, system checks, migrations and the demo command."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys import services
from apikeys.checks import check_apikeys_settings
from apikeys.models import ApiKey, Organization

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "APIKEYS_HASHING_SECRET", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import project.settings"],
        check=False,
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "APIKEYS_HASHING_SECRET"])
def test_without_debug_a_missing_secret_stops_start_up_with_a_clear_message(missing):
    env = {"DEBUG": "false", "SECRET_KEY": "x" * 50, "APIKEYS_HASHING_SECRET": "y" * 50}
    del env[missing]
    result = _load_settings(**env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_with_both_secrets_and_debug_off_settings_load():
    result = _load_settings(DEBUG="false", SECRET_KEY="x" * 50, APIKEYS_HASHING_SECRET="y" * 50)
    assert result.returncode == 0, result.stderr


def test_argon2_is_the_first_password_hasher():
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_valid_settings_pass_the_system_checks():
    assert check_apikeys_settings() == []


@pytest.mark.parametrize(
    "override, error_id",
    [
        ({"HASHING_SECRET": "short"}, "apikeys.E002"),
        ({"HASHING_SECRET": None}, "apikeys.E002"),
        ({"MAX_ROTATION_GRACE_SECONDS": -1}, "apikeys.E003"),
        ({"TRUST_X_FORWARDED_FOR": "yes"}, "apikeys.E004"),
        ({"NO_SUCH_KNOB": 1}, "apikeys.E001"),
    ],
)
def test_bad_settings_are_flagged_at_start_up(settings, override, error_id):
    settings.APIKEYS = {**settings.APIKEYS, **override}
    assert error_id in {e.id for e in check_apikeys_settings()}


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_loaddemo_is_idempotent_and_its_keys_verify(settings):
    settings.DEBUG = True
    first = StringIO()
    call_command("loaddemo", stdout=first)
    call_command("loaddemo", stdout=StringIO())
    assert Organization.objects.filter(code="org_acmedemo").count() == 1
    assert ApiKey.objects.count() == 2
    printed = [w for w in first.getvalue().split() if w.startswith("k_live_")]
    assert len(printed) == 2
    for key in printed:
        assert services.api_key_verify(key=key).is_valid


@pytest.mark.django_db
def test_loaddemo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError):
        call_command("loaddemo", stdout=StringIO())
    assert not Organization.objects.exists()
