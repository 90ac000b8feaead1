"""The second coverage gate: the security-critical modules at 100% of their statements and
branches, whatever the total (README, "Tests").

Run after the suite, on the data it left (``.coverage``, or ``$COVERAGE_FILE``), with the
settings of ``[tool.coverage]`` in pyproject.toml::

    python tests/coverage_gate.py

Exits 1, naming the lines and branches no test reached, when one of ``CRITICAL`` falls short
or was not measured at all (a renamed module must be renamed here too, never dropped
silently). A module joins the list with the tests that bring it to 100%.
"""

from __future__ import annotations

import sys
from pathlib import Path

import coverage
from coverage.exceptions import NoDataError

ROOT = Path(__file__).resolve().parent.parent

# Key material; the scope permission of the protected views; the client-secret hasher of
# the M2M applications; password sign-in (the throttle shared by the admin and the portal,
# and the portal-only session mark); the portal's sign-in form and its one-time links
# (creation, the return-URL and sub-page checks, redemption exactly once, purging).
# apikeys/services/verification.py and apikeys/oauth.py join when their rewrite lands.
CRITICAL = [
    "apikeys/crypto.py",
    "apikeys/permissions.py",
    "apikeys/hashers.py",
    "apikeys/signin.py",
    "portal/forms.py",
    "portal/services.py",
]


def main() -> int:
    missing_files = [path for path in CRITICAL if not (ROOT / path).is_file()]
    if missing_files:
        print(f"coverage gate: no such module: {', '.join(missing_files)}", file=sys.stderr)
        return 1
    cov = coverage.Coverage(config_file=str(ROOT / "pyproject.toml"))
    try:
        cov.load()
        measured = {str(Path(name).resolve()) for name in cov.get_data().measured_files()}
    except NoDataError:
        measured = set()
    unmeasured = [path for path in CRITICAL if str((ROOT / path).resolve()) not in measured]
    if unmeasured:
        print(
            "coverage gate: no coverage data for "
            f"{', '.join(unmeasured)} (run the suite with --cov first)",
            file=sys.stderr,
        )
        return 1
    print("Security-critical modules, held to 100% of statements and branches:")
    total = cov.report(
        include=[str(ROOT / path) for path in CRITICAL],
        show_missing=True,
        skip_covered=False,
        precision=1,
        file=sys.stdout,
    )
    if total < 100:
        print(f"coverage gate: {total:.1f}% < 100%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
