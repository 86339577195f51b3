"""Extract fanned out as the state machine runs it, with one process per worker.

A snapshot holder on a thread of this child process; the plan's tables read by one fresh
interpreter each (``python -m benchmarks.stage extract_table``), at most as many at once as the
``Map`` state's ``MaxConcurrency``; then the one commit. Each worker is what one Lambda invocation
of the ``Map`` state does, so its seconds and its own peak memory are the per-table figures from
which the state machine's time and memory at larger scales are worked out.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import db_json, peak_rss_mb, run_stage
from totes.extract import fanout
from totes.extract.plan import ExtractRequest
from totes.lake import LocalLake
from totes.settings import DbSettings, ExtractSettings


def map_concurrency() -> int:
    """What the state machine definition sets, so the bench cannot drift from it."""
    definition = json.loads(
        (Path(__file__).resolve().parents[1] / "infra" / "state_machine.asl.json").read_text()
    )
    work = definition["States"]["Extract"]["Branches"][1]["States"]["ExtractTables"]
    return int(work["MaxConcurrency"])


def measure_fanout(source: DbSettings, ingestion: Path) -> dict[str, Any]:
    """Child process: a full first extract through the fan-out; per-worker figures."""
    lake = LocalLake(ingestion)
    attempt = str(uuid.uuid4())
    finished = threading.Event()
    settings = ExtractSettings()
    with ThreadPoolExecutor(max_workers=1) as holder:
        started = time.perf_counter()
        held = holder.submit(
            fanout.hold_snapshot,
            source,
            lake,
            ExtractRequest("bench-fanout", None, datetime.now(UTC), full_scan=True),
            attempt=attempt,
            settings=settings,
            deadline=time.monotonic() + 3600,
            abandoned=finished.is_set,
        )
        try:
            plan = fanout.await_plan(lake, attempt=attempt, deadline=time.monotonic() + 600)

            def worker(table: str) -> dict[str, Any]:
                return run_stage(
                    "extract_table",
                    {
                        "source": db_json(source),
                        "ingestion": str(ingestion),
                        "attempt": attempt,
                        "table": table,
                    },
                )

            with ThreadPoolExecutor(max_workers=map_concurrency()) as workers:
                measured = list(workers.map(worker, plan["tables"]))
            summary = fanout.commit_parts(
                lake, attempt=attempt, parts=[m["part"] for m in measured]
            )
        finally:
            finished.set()
        held.result()
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": sum(summary["rows"].values()),
        "holder_peak_rss_mb": peak_rss_mb(),
        "concurrency": map_concurrency(),
        "workers": {
            m["part"]["table"]: {
                "seconds": m["seconds"],
                "rows": m["part"]["entry"]["rows"],
                "peak_rss_mb": m["peak_rss_mb"],
            }
            for m in measured
        },
    }


def measure_table(source: DbSettings, ingestion: Path, attempt: str, table: str) -> dict[str, Any]:
    """Grandchild process: one ``Map`` iteration, timed as a whole invocation's work."""
    started = time.perf_counter()
    part = fanout.extract_table(
        source, LocalLake(ingestion), attempt=attempt, table=table, settings=ExtractSettings()
    )
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(), "part": part}
