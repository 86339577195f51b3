"""Extract: a full first run of the source next to a raw ``COPY (SELECT ...) TO STDOUT``.

Both run in the same child process, the raw COPY before and after the extract, and the faster of
the two counts: that is the physical floor of reading these rows through psycopg on this machine
at this moment, with which the extract's rows/s is compared (goal: at least half).

The extract writes to a local-directory lake. moto's S3 server would run on the same two cores
as the measured process and make the figure depend on moto's speed rather than the extract's;
on AWS the puts go to S3 on worker threads while the next table is read.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import peak_rss_mb
from totes.extract.extractor import run_extract
from totes.lake import LocalLake
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER, source_table


def raw_copy_statements() -> list[str]:
    """The extract's tables and columns, in key order, without any of its own work."""
    statements = []
    for name in LOAD_ORDER:
        table = source_table(name)
        columns = ", ".join(c.select_expression for c in table.columns)
        statements.append(
            f"COPY (SELECT {columns} FROM {table.quoted}"
            f' ORDER BY "{table.primary_key}") TO STDOUT (FORMAT csv)'
        )
    return statements


def raw_copy_out(source: DbSettings) -> float:
    """Seconds to read every table's COPY output as blocks, as fast as psycopg hands them over."""
    with psycopg.connect(**source.conninfo()) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for statement in raw_copy_statements():
            with cur.copy(statement) as copy:
                for _ in copy:
                    pass
        return time.perf_counter() - started


def measure_extract(source: DbSettings, ingestion: Path) -> dict[str, Any]:
    """Child process: raw COPY, a full first extract, raw COPY again."""
    before = raw_copy_out(source)
    started = time.perf_counter()
    summary = run_extract(
        source,
        LocalLake(ingestion),
        run_id="bench",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=True,
        settings=ExtractSettings(),
    )
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()  # before the second raw COPY can add to it
    after = raw_copy_out(source)
    return {
        "seconds": seconds,
        "rows": sum(summary["rows"].values()),
        "peak_rss_mb": peak,
        "copy_out_seconds": min(before, after),
    }
