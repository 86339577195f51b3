"""checkov on infra/: nothing fails, and every check left out says why, beside the resource."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

INFRA = Path(__file__).resolve().parents[2] / "infra"
# make venv installs checkov in an environment of its own inside the development one (Makefile).
CHECKOV = Path(sys.prefix) / "checkov" / "bin" / "checkov"


def _checkov() -> dict[str, Any]:
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "terraform", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    assert isinstance(report, dict), "one framework, one report"
    return report


def test_checkov_fails_nothing_and_every_skip_gives_its_reason() -> None:
    report = _checkov()
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 150  # the checks did run over the modules
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{skipped['check_id']} on {skipped['resource']}: {reason!r}"


def test_every_skip_is_written_inline_with_a_reason() -> None:
    pattern = re.compile(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)")
    skips = 0
    for path in sorted(INFRA.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for check, colon, reason in pattern.findall(line):
                skips += 1
                assert colon, f"{path}:{number}: {check} has no reason"
                assert len(reason.strip()) > 30, f"{path}:{number}: {check}: {reason!r}"
    assert skips > 0
    # No skip list outside the .tf files (a .checkov.yaml or a baseline would hide them).
    repo = INFRA.parent
    assert not list(repo.glob(".checkov*"))
    assert not list(INFRA.rglob("*.checkov*"))
