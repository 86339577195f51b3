"""Transform: everything the extract landed, into a fresh processed lake, in a process of its own.

Its input is the extract's real output at the same scale, so the figure includes reading the
landed Parquet objects, the state of a first run, and writing the processed batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import peak_rss_mb
from totes.lake import LocalLake
from totes.transform.transformer import transform_pending


def measure_transform(ingestion: Path, processed: Path) -> dict[str, Any]:
    started = time.perf_counter()
    summary = transform_pending(LocalLake(ingestion), LocalLake(processed))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows_out": sum(summary["rows"].values()),
        "peak_rss_mb": peak_rss_mb(),
    }
