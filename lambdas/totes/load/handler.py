"""Lambda 3 entry point: load every pending processed batch, migrating the schema when needed.

The event is ignored for the work (the load always takes everything committed and not yet in the
ledger, so a retry or a late start converges to the same warehouse); its run id labels the logs
and its window dates the freshness metric. Credentials refused by the warehouse are re-read once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from totes.clock import parse_instant
from totes.lake import Lake, open_lake
from totes.load.loader import load_pending
from totes.observability import count, count_per_table, handler, log
from totes.runtime import per_container, with_fresh_credentials
from totes.settings import processed_lake, warehouse_db

# A window ending longer ago than this is a backfill: its lag says nothing about freshness.
LIVE_WINDOW = timedelta(hours=1)


@per_container
def _lake() -> Lake:
    return open_lake(processed_lake())


def freshness(event: Any, summary: dict[str, Any], now: datetime) -> dict[str, float]:
    """The freshness figures of this run, in seconds.

    ``FreshnessLagSeconds``: how long a source change can have waited to be visible, counted on
    the pipeline's own clock: the previous run read the source at this run's ``window_start`` at
    the latest, so every change since then is delivered now. Live runs only.
    ``NewestChangeAgeSeconds``: the age of the newest source change visible in the warehouse, if
    the source's naive timestamps are UTC. It grows whenever the source is quiet (nights,
    weekends), so it is reported, not alarmed on.
    """
    figures: dict[str, float] = {}
    window = event if isinstance(event, dict) else {}
    try:
        start = parse_instant(str(window["window_start"]))
        end = parse_instant(str(window["window_end"]))
    except (KeyError, ValueError):
        pass  # a manual invocation without a window: no lag to report
    else:
        if now - end <= LIVE_WINDOW:
            figures["FreshnessLagSeconds"] = round((now - start).total_seconds(), 3)
    if summary.get("newest_change"):
        newest = datetime.fromisoformat(summary["newest_change"]).replace(tzinfo=UTC)
        figures["NewestChangeAgeSeconds"] = round((now - newest).total_seconds(), 3)
    return figures


@handler()
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    lake = _lake()
    started = time.perf_counter()
    summary = with_fresh_credentials(
        lambda fresh: load_pending(warehouse_db(fresh=fresh), lake, migrate=True)
    )
    count("LoadSeconds", round(time.perf_counter() - started, 3), unit="Seconds")
    figures = freshness(event, summary, datetime.now(UTC))
    log("load.done", **summary, freshness=figures)
    count_per_table("Rows", "load", summary["rows"])
    count_per_table("FactVersionsAdded", "load", summary["fact_versions_added"])
    for name, seconds in figures.items():
        count(name, seconds, unit="Seconds")
    return {**summary, "freshness": figures}
