"""``make demo`` is the first thing a newcomer runs: it must work from nothing, in a fresh
process, and its summary must show the second run adding exactly the simulated versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_product_end_to_end_from_nothing() -> None:
    totes = Path(sys.executable).parent / "totes"
    # No PG_* variables: the demo must start its own PostgreSQL and moto, as on a fresh machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "AWS_", "AIRFLOW"))}
    done = subprocess.run(
        [str(totes), "demo", "--scale", "0.05", "--minutes", "180"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("sales_order ") for line in lines), "no source row counts"
    added = next(line for line in lines if line.startswith("fact versions added by run 2:"))
    made = next(line for line in lines if line.startswith("versions the simulation made:"))
    added_counts = json.loads(added.split(":", 1)[1])
    assert added_counts == json.loads(made.split(":", 1)[1])
    assert sum(added_counts.values()) > 0
    assert "totes check: consistent" in lines
