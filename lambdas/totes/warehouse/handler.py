"""Lambda 3 entry point: bring the schema up to date, then load every pending processed batch.

The event is ignored on purpose: the load always takes everything committed and not yet in the
ledger, so a retry or a late start converges to the same warehouse.
"""

from __future__ import annotations

from typing import Any

from totes import jsonlog
from totes.lake import open_lake
from totes.settings import processed_lake, warehouse_db
from totes.warehouse.loader import load_pending
from totes.warehouse.migrations import migrate


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    db = warehouse_db()
    lake = open_lake(processed_lake())
    migrate(db)
    summary = load_pending(db, lake)
    jsonlog.log("load.done", **summary)
    return summary
