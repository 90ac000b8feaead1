"""``make run``'s ``.env`` and how ``manage.py`` reads it (issue 14, items 3 and 4)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from project import devenv

ROOT = Path(__file__).resolve().parents[2]


def values(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )


def test_secrets_are_generated_once_and_the_address_follows_host_and_port(tmp_path):
    env_file = tmp_path / ".env"
    devenv.main(["--file", str(env_file), "--port", "8000"])
    first = values(env_file.read_text())
    assert first["DEBUG"] == "true"
    assert first["APIKEYS_PORTAL_PUBLIC_URL"] == "http://127.0.0.1:8000"
    assert len(first["SECRET_KEY"]) >= 50 and len(first["APIKEYS_HASHING_SECRET"]) >= 32
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    env_file.write_text(env_file.read_text() + "LOG_LEVEL=DEBUG\n")
    devenv.main(["--file", str(env_file), "--host", "0.0.0.0", "--port", "8011"])
    second = values(env_file.read_text())
    assert second["APIKEYS_PORTAL_PUBLIC_URL"] == "http://0.0.0.0:8011"
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["APIKEYS_HASHING_SECRET"] == first["APIKEYS_HASHING_SECRET"]
    assert second["LOG_LEVEL"] == "DEBUG"
    assert env_file.read_text().count(devenv.HEADER) == 1


def run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "SECRET_KEY", "APIKEYS_"))
    }
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        check=False,
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_manage_py_reads_the_env_file_so_commands_run_as_printed(tmp_path):
    env_file = tmp_path / ".env"
    devenv.main(["--file", str(env_file), "--port", "8011"])
    done = run_manage(
        ["shell", "-c", "from apikeys import conf; print(conf.get('PORTAL_PUBLIC_URL'))"],
        {"DOTENV_FILE": str(env_file), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "http://127.0.0.1:8011"


def test_a_missing_secret_with_debug_off_is_one_clear_line(tmp_path):
    done = run_manage(["check"], {"DOTENV_FILE": "", "DEBUG": "false"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("Configuration error: SECRET_KEY is not set")
    assert "Traceback" not in done.stderr


@pytest.mark.django_db
def test_loaddemo_prints_the_address_the_demo_is_served_on(settings):
    settings.APIKEYS = {**settings.APIKEYS, "PORTAL_PUBLIC_URL": "http://127.0.0.1:8011"}
    settings.DEBUG = True
    out = StringIO()
    call_command("loaddemo", stdout=out)
    printed = out.getvalue()
    assert "http://127.0.0.1:8011/admin/" in printed
    assert "http://127.0.0.1:8011/portal/" in printed
    assert ":8000" not in printed
