"""AWS Lambda entry point of the transform: settings in, summary out, errors raised.

The event is ignored on purpose (its run id only labels the logs): the transform always does
everything pending, so a retry, a duplicate start or a manual run all converge to the same
processed lake. Both lakes are opened once per container.
"""

from __future__ import annotations

import time
from typing import Any

from totes.lake import Lake, open_lake
from totes.observability import count, count_per_table, handler, log
from totes.runtime import per_container
from totes.settings import ingestion_lake, processed_lake
from totes.transform.transformer import transform_pending


@per_container
def _lakes() -> tuple[Lake, Lake]:
    return open_lake(ingestion_lake()), open_lake(processed_lake())


@handler()
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    summary = transform_pending(*_lakes())
    seconds = round(time.perf_counter() - started, 3)
    quarantined = sum(summary["quarantined"].values())
    log("transform.done", batches=len(summary["batches"]), quarantined=quarantined, seconds=seconds)
    count_per_table("Rows", "transform", summary["rows"])
    count_per_table("QuarantinedRows", "transform", summary["quarantined"])
    count("QuarantinedRowsTotal", quarantined)
    count("TransformSeconds", seconds, unit="Seconds")
    return summary
