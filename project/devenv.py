"""Write the local demo's ``.env`` (``make run`` calls this): ``python -m project.devenv
--host 127.0.0.1 --port 8000``.

``manage.py`` reads ``.env`` (never ``gunicorn project.wsgi`` or the tests), so after
``make run`` every ``.venv/bin/python manage.py …`` command of the README runs as printed,
with the same secrets as the demo server. The file is git-ignored and written with
owner-only permissions:

- ``SECRET_KEY`` and ``APIKEYS_HASHING_SECRET`` are generated once and then kept (a new
  hashing secret would invalidate every demo key);
- ``DEBUG=true``, and ``APIKEYS_PORTAL_PUBLIC_URL`` from ``--host``/``--port``, are written on
  every run, so ``PORT=8011 make run`` builds links and prints addresses on port 8011;
- any other line someone added is kept as it is.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
HEADER = "# Written by `make run` for a local demo (read by manage.py). Never use it in production."
GENERATED_ONCE = ("SECRET_KEY", "APIKEYS_HASHING_SECRET")


def demo_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def render(existing: str, *, host: str, port: int) -> str:
    values: dict[str, str] = {}
    kept: list[str] = []
    for line in existing.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
        if line != HEADER:
            kept.append(line)
    written = {
        "DEBUG": "true",
        "APIKEYS_PORTAL_PUBLIC_URL": demo_url(host, port),
        **{name: values.get(name) or secrets.token_urlsafe(48) for name in GENERATED_ONCE},
    }
    lines = [HEADER]
    for line in kept:
        name = line.partition("=")[0].strip()
        if name in written:
            lines.append(f"{name}={written.pop(name)}")
        else:
            lines.append(line)
    lines.extend(f"{name}={value}" for name, value in written.items())
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--file", type=Path, default=ENV_FILE)
    args = parser.parse_args(argv)
    existing = args.file.read_text() if args.file.exists() else ""
    args.file.write_text(render(existing, host=args.host, port=args.port))
    os.chmod(args.file, 0o600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
