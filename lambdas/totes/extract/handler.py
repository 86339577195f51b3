"""AWS Lambda entry point of the extract stage: a thin composition root.

The event is the state machine's input: ``{"run_id", "window_start", "window_end", "full_scan"}``.
A window may be left open (null or absent, as for a DAG run with no data interval): the run then
reads up to now, from the last committed watermark, and its summary says which window it used.
The lake and the extract settings are built once per container; the source's credentials come
from settings (cached secret) and are re-read once if the source refuses them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from totes.clock import parse_instant
from totes.errors import SettingsError
from totes.extract.extractor import run_extract
from totes.lake import Lake, open_lake
from totes.observability import count, count_per_table, handler
from totes.runtime import per_container, with_fresh_credentials
from totes.settings import ExtractSettings, extract_settings, ingestion_lake, source_db


@per_container
def _resources() -> tuple[Lake, ExtractSettings]:
    return open_lake(ingestion_lake()), extract_settings()


def _instant(event: dict[str, Any], name: str) -> datetime | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"extract event field {name} must be an ISO-8601 UTC string")
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise SettingsError(
            f"extract event field {name} is not an ISO-8601 UTC instant: {exc}"
        ) from None


@handler()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    full_scan = event.get("full_scan", False)
    if not isinstance(full_scan, bool):
        raise SettingsError("extract event field full_scan must be true or false")
    run_id = str(event.get("run_id") or "manual")
    window_start = _instant(event, "window_start")
    window_end = _instant(event, "window_end") or datetime.now(UTC)
    lake, settings = _resources()
    summary = with_fresh_credentials(
        lambda fresh: run_extract(
            source_db(fresh=fresh),
            lake,
            run_id=run_id,
            window_start=window_start,
            window_end=window_end,
            full_scan=full_scan,
            settings=settings,
        )
    )
    count_per_table("Rows", "extract", summary["rows"])
    count("ExtractSeconds", summary["seconds"], unit="Seconds")
    return summary
