#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

It reads ``.env`` beside it when there is one (``make run`` writes it for the local demo:
DEBUG on, generated secrets, the demo's address), so that the README's commands run as
printed; variables already set in the environment win. ``DOTENV_FILE`` names another file,
or none when empty (the test suite sets it empty: a developer's demo file must not change
what the tests see). A setting that is missing or wrong
ends the command with one clear line, not a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    env_file = Path(os.environ.get("DOTENV_FILE", Path(__file__).resolve().parent / ".env"))
    if os.environ.get("DOTENV_FILE") != "" and env_file.is_file():
        import environ

        environ.Env.read_env(env_file)
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        sys.stderr.write(f"Configuration error: {error}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
