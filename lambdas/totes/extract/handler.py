"""AWS Lambda entry point of the extract stage: a thin composition root.

Settings and the lake client are built once per distinct configuration and reused by warm
invocations (building a boto3 client costs more than a whole no-change run); tests that change
the environment get fresh ones.
"""

from __future__ import annotations

import os
from typing import Any

from totes.errors import SettingsError
from totes.extract.extractor import run_extract
from totes.extract.window import parse_instant
from totes.lake import Lake, open_lake
from totes.settings import (
    DbSettings,
    ExtractSettings,
    extract_settings,
    ingestion_lake,
    source_db,
)

# Every variable the resources below depend on: a change of any of them rebuilds them.
_CONFIG_VARIABLES = (
    "PG_HOST",
    "PG_PORT",
    "PG_USER",
    "PG_PASSWORD",
    "PG_DATABASE",
    "TOTES_SOURCE_SECRET_ID",
    "TOTES_INGESTION_URI",
    "TOTES_OVERLAP_MINUTES",
    "TOTES_FULL_SCAN_CADENCE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
)

_cache: dict[tuple[str | None, ...], tuple[DbSettings, Lake, ExtractSettings]] = {}


def resources() -> tuple[DbSettings, Lake, ExtractSettings]:
    key = tuple(os.environ.get(name) for name in _CONFIG_VARIABLES)
    if key not in _cache:
        _cache.clear()
        _cache[key] = (source_db(), open_lake(ingestion_lake()), extract_settings())
    return _cache[key]


def _instant(event: dict[str, Any], name: str, *, required: bool) -> Any:
    value = event.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"extract event field {name} must be an ISO-8601 UTC string")
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise SettingsError(
            f"extract event field {name} is not an ISO-8601 UTC instant: {exc}"
        ) from None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    full_scan = event.get("full_scan", False)
    if not isinstance(full_scan, bool):
        raise SettingsError("extract event field full_scan must be true or false")
    run_id = str(event.get("run_id") or "manual")
    window_start = _instant(event, "window_start", required=False)
    window_end = _instant(event, "window_end", required=True)
    source, lake, settings = resources()
    return run_extract(
        source,
        lake,
        run_id=run_id,
        window_start=window_start,
        window_end=window_end,
        full_scan=full_scan,
        settings=settings,
    )
