"""Run pip-audit on the project's environment and say plainly what it could and could not
check (``make audit``).

- Any known vulnerability in an installed distribution fails (exit 1), naming it and the
  versions that fix it.
- pip-audit skips distributions its vulnerability service does not know (the project
  itself, installed editable). When it could audit *nothing at all*, its service was out of
  reach (no network, or a package proxy without PyPI's JSON API): pip-audit itself would
  still print "No known vulnerabilities found", which would be false comfort. This gate
  prints that nothing was audited instead, and fails if ``PIP_AUDIT_REQUIRED=1`` (set it
  where the service is reachable, so that an outage cannot pass silently).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--format",
            "json",
            "--progress-spinner",
            "off",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        print("pip-audit: no report (see above).", file=sys.stderr)
        return 1
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(
                f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})"
            )
    if vulnerable:
        return 1
    if dependencies and not audited:
        print(
            f"pip-audit: its vulnerability service could not be reached, so NONE of the "
            f"{len(skipped)} installed distributions was audited (first reason: "
            f"{skipped[0]['skip_reason']})."
        )
        return 1 if os.environ.get("PIP_AUDIT_REQUIRED") == "1" else 0
    print(f"pip-audit: {len(audited)} distributions audited, no known vulnerability.")
    for dependency in skipped:
        print(f"  not audited: {dependency['name']} ({dependency['skip_reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
