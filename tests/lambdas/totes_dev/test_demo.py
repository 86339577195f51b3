"""``make demo`` is the first thing a newcomer runs: it must work from nothing, in a fresh
process, read cleanly (no warning, no traceback, the summary last), and its summary must show the
second run adding exactly the simulated versions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def test_make_demo_runs_the_product_end_to_end_from_nothing_and_reads_cleanly() -> None:
    # No PG_*, AWS or Airflow variables: the demo starts its own PostgreSQL and moto, as on a
    # fresh machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "AWS_", "AIRFLOW"))}
    done = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    for noise in ("Warning", "warning", "Traceback", "Freshness target missed"):
        assert noise not in printed, printed
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines[-1] == "totes check: consistent"
    # Only make's own echo of the command may precede the demo's lines.
    assert all(line.startswith(("[", ".venv/bin/totes demo")) for line in lines[:3]), lines[:3]
    assert any(line.startswith("sales_order ") for line in lines), "no source row counts"
    added = next(line for line in lines if line.startswith("fact versions added by run 2:"))
    made = next(line for line in lines if line.startswith("versions the simulation made:"))
    added_counts = json.loads(added.split(":", 1)[1])
    assert added_counts == json.loads(made.split(":", 1)[1])
    assert sum(added_counts.values()) > 0
    # The pipeline's own log lines went to the file the demo named, not to the terminal.
    named = next(line for line in lines if "pipeline logs: " in line)
    log_file = Path(named.split("pipeline logs: ", 1)[1])
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    log_file.unlink()
    assert any(record.get("message") == "load.done" for record in logged)
    assert any("_aws" in record for record in logged)  # the metrics, too
