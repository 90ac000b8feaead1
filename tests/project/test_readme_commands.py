"""What the README says is what happens (issue 14, item 3): in a fresh clone, `make run`, then
every shell command the README gives a newcomer, exactly as printed.

The clone gets a virtualenv that sees this one's packages (a .pth file) instead of a fresh
`pip install`, so the test needs no network and a minute rather than five; `make run` then
runs its real recipe (the .env, migrate, collectstatic, loaddemo, runserver) on a free port.
The port and the `k_live_…` placeholder are the only things substituted in the commands.

Left out, each for its reason: `make test` (this suite itself), `make bench` (minutes of
load; tests/benchmarks), and the deploy block (it installs into a new virtualenv and needs a
production database: tests/security/test_deployment.py and the gunicorn-based tests run the
same configuration).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

REPO = Path(__file__).resolve().parents[2]
KEY = re.compile(r"k_live_[0-9A-Za-z]{46}")


def readme_commands() -> list[str]:
    """The shell commands a newcomer runs after `make run`: the ```sh blocks (output lines are
    comments there) and inline `.venv/bin/python manage.py …` / `curl …` commands."""
    readme = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", readme, flags=re.DOTALL | re.MULTILINE):
        if block.startswith(("make run", "python3.11 -m venv")):
            continue
        commands.append(block)
    commands.extend(re.findall(r"`((?:\.venv/bin/python manage\.py|curl) [^`]+)`", readme))
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Runs the command with SIGINT at its default, then becomes it (exec keeps the pid).
AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def test_every_readme_command_runs_as_printed_in_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(clone / ".venv")], check=True
    )
    site = Path(
        subprocess.run(
            [str(clone / ".venv/bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    ours = dict.fromkeys([str(clone), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_readme_test.pth").write_text("\n".join(ours) + "\n")
    (clone / ".venv" / ".installed").touch()  # installed: make's stamp is newer than pyproject

    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PYTEST_", "DATABASE_", "CACHE_", "APIKEYS_", "DOTENV"))
        and k not in {"DEBUG", "SECRET_KEY", "VIRTUAL_ENV", "PYTHONPATH"}
    }  # fmt: skip
    port = free_port()
    log = (tmp_path / "make-run.log").open("w")
    # As a terminal starts a foreground job: Ctrl-C (SIGINT) at its default. A process that
    # starts with SIGINT ignored passes that on through exec, and then Python never installs
    # its KeyboardInterrupt handler (runserver would outlive the Ctrl-C below); the test
    # process may have it ignored, depending on what ran in it before.
    server = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, "make", "run", f"PORT={port}"], cwd=clone,
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "make run did not serve"
                time.sleep(0.5)
        printed = (tmp_path / "make-run.log").read_text()
        assert f"http://127.0.0.1:{port}/admin/" in printed and ":8000" not in printed
        demo_key = KEY.search(printed)
        assert demo_key, printed[-3000:]

        def run(command: str, **extra: str) -> str:
            command = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            command = command.replace("k_live_…", demo_key.group(0))
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                check=False, cwd=clone, env={**env, **extra},
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
            assert "Traceback" not in done.stderr, (command, done.stderr[-2000:])
            return done.stdout

        credentials: dict[str, str] = {}
        outputs = {}
        for command in readme_commands():
            out = run(command, **credentials)
            outputs[command] = out
            if "createm2mapp" in command:
                made = json.loads(out.strip().splitlines()[-1])
                credentials = {
                    "CLIENT_ID": made["client_id"],
                    "CLIENT_SECRET": made["client_secret"],
                }
        ran = " ".join(outputs)
        for expected in (
            "createm2mapp",
            "/oauth2/token",
            "/api/v1/api_keys/verify",
            "portallink",
            "/example/users",
            "cleartokens",
            "clearportallinks",
        ):
            assert expected in ran, expected
        verified = [out for cmd, out in outputs.items() if "/api/v1/api_keys/verify" in cmd]
        # The block prints the token answer, then the verification (curl adds no newline).
        answer, _end = json.JSONDecoder().raw_decode(verified[0][verified[0].rindex('{"code"') :])
        assert answer["code"] == "API_KEY_VERIFIED" and answer["is_valid"] is True
        links = [out for cmd, out in outputs.items() if "manage.py portallink " in cmd]
        assert links[0].strip().startswith(f"http://127.0.0.1:{port}/portal/link/")

        # make run's task worker runs beside the server, and Ctrl-C (SIGINT to the terminal's
        # process group) stops both: no worker is left behind.
        listing = subprocess.run(
            ["ps", "-o", "pid=,args=", "-g", str(server.pid)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        workers = [int(line.split()[0]) for line in listing.splitlines() if "db_worker" in line]
        assert workers, listing
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            left = subprocess.run(
                ["ps", "-o", "pid=,stat=,args=", "-g", str(server.pid)],
                check=False, capture_output=True, text=True,
            ).stdout  # fmt: skip
            raise AssertionError(
                f"make run outlived Ctrl-C by 60 s; still running:\n{left}"
            ) from None
        deadline = time.monotonic() + 60
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "the worker outlived make run"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # already ended by the Ctrl-C above
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
