"""Whole cycles: the first on a real snapshot, cycles with nothing new, and aged incrementals.

* First cycle: extract, transform and load of the 2024-02-23 snapshot in one process, as
  ``totes run`` does, against a raw COPY of the same warehouse rows with foreign keys.
* Nothing new: ``totes run`` as a new process right after that first cycle; both the wall time
  (process start and imports included) and the cycle's own seconds from its summary (the work
  a warm Lambda handler does) are kept.
* Aged incremental: on a copy of a generated source, a first cycle, then 20 simulated minutes
  and a cycle, ten times over. The first three incremental cycles are compared with the last
  three (medians): a cost that grows with the lake's or the warehouse's history shows up as
  their ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from benchmarks.common import drop_database, new_database
from totes.lake import LocalLake
from totes.load.migrations import migrate
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes_dev.source.simulate import simulate

SIMULATED_MINUTES = 20
AGED_CYCLES = 10
AGED_SAMPLE = 3  # cycles at each end of the aged run


def stack(admin: DbSettings, source: DbSettings, root: Path) -> Stack:
    warehouse = new_database(admin, "wh")
    migrate(warehouse)  # a deployed warehouse is migrated before its first cycle
    return Stack(
        source=source,
        ingestion=LocalLake(root / "ingestion"),
        processed=LocalLake(root / "processed"),
        warehouse=warehouse,
        settings=ExtractSettings(),
    )


def run_env(stack: Stack) -> dict[str, str]:
    """The environment a deployed ``totes run`` would read for this stack."""
    env = dict(os.environ)
    for suffix, db in (("", stack.source), ("_DW", stack.warehouse)):
        env.update(
            {
                f"PG_HOST{suffix}": db.host,
                f"PG_PORT{suffix}": str(db.port),
                f"PG_USER{suffix}": db.user,
                f"PG_PASSWORD{suffix}": db.password,
                f"PG_DATABASE{suffix}": db.database,
            }
        )
    assert isinstance(stack.ingestion, LocalLake)
    assert isinstance(stack.processed, LocalLake)
    env["TOTES_INGESTION_URI"] = str(stack.ingestion.root)
    env["TOTES_PROCESSED_URI"] = str(stack.processed.root)
    return env


def timed_cycle(stack: Stack) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    summary = run_cycle(stack)
    return time.perf_counter() - started, summary


def no_change_run(stack: Stack) -> tuple[float, float]:
    """Wall seconds of ``totes run`` as a new process, and the cycle's own seconds inside it."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "run"],
        env=run_env(stack),
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary["batch_id"] is not None:
        raise RuntimeError(f"a run expected to find nothing new landed batch {summary['batch_id']}")
    return wall, float(summary["seconds"]["total"])


def aged_incremental(admin: DbSettings, template: str, root: Path) -> tuple[float, float]:
    """Median seconds of the first :data:`AGED_SAMPLE` incremental cycles after the first full
    cycle, and of the last ones, after ten. One cycle is about half a second here and single
    cycles of an unchanged code base varied by up to 1.2x from one to the next, so one sample at
    each end reported noise; a cost that grows with history still shows between the ends."""
    source = new_database(admin, "aged", template=template)
    cycle_stack = stack(admin, source, root)
    try:
        timed_cycle(cycle_stack)  # the full first cycle
        seconds: list[float] = []
        for seed in range(1, AGED_CYCLES + 1):
            simulate(source, minutes=SIMULATED_MINUTES, seed=seed)
            elapsed, summary = timed_cycle(cycle_stack)
            if summary["batch_id"] is None:
                raise RuntimeError("a simulated window produced no batch")
            seconds.append(elapsed)
        return median(seconds[:AGED_SAMPLE]), median(seconds[-AGED_SAMPLE:])
    finally:
        drop_database(admin, cycle_stack.warehouse)
        drop_database(admin, source)
