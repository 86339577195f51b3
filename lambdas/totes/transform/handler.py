"""AWS Lambda entry point of the transform: settings in, summary out, errors raised.

The event is ignored on purpose: the transform always does everything pending, so a retry, a
duplicate start or a manual run all converge to the same processed lake.
"""

from __future__ import annotations

import time
from typing import Any

from totes.jsonlog import log
from totes.lake import open_lake
from totes.settings import ingestion_lake, processed_lake
from totes.transform.transformer import transform_pending


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    summary = transform_pending(open_lake(ingestion_lake()), open_lake(processed_lake()))
    log(
        "transform.done",
        batches=len(summary["batches"]),
        quarantined=sum(summary["quarantined"].values()),
        seconds=round(time.perf_counter() - started, 3),
    )
    return summary
