"""AWS Lambda entry point of the extract stage: a thin composition root.

The event is the state machine's input: ``{"run_id", "window_start", "window_end", "full_scan"}``.
A window may be left open (null or absent, as for a DAG run with no data interval): the run then
reads up to now, from the last committed watermark, and its summary says which window it used.
Without ``action`` one invocation does the whole extract. The state machine fans it out instead
(:mod:`totes.extract.fanout`), with ``action`` set to ``hold_snapshot`` (plus the fields above),
``await_plan``, ``extract_table`` (plus ``table``) or ``commit`` (plus ``parts``, the ``Map``
state's results), each with the ``attempt`` id they share.
The lake and the extract settings are built once per container; the source's credentials come
from settings (cached secret) and are re-read once if the source refuses them.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any

from totes.clock import parse_instant
from totes.errors import SettingsError
from totes.extract import fanout
from totes.extract.extractor import run_extract
from totes.extract.plan import ExtractRequest, attempt_id
from totes.lake import Lake, open_lake
from totes.observability import count, count_per_table, handler
from totes.runtime import execution_ended, per_container, with_fresh_credentials
from totes.settings import ExtractSettings, extract_settings, ingestion_lake, source_db
from totes.tables import LOAD_ORDER


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


# A waiting invocation gives up this long before its Lambda would be stopped, so that it ends with
# its own error rather than a timeout.
MARGIN_SECONDS = 10.0


# The plan comes within seconds of the holder's start; the state machine stops AwaitPlan at 360 s,
# so it gives up first, with a reason.
PLAN_WAIT_SECONDS = 300.0


def _deadline(context: Any, limit: float | None = None) -> float:
    remaining = context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    if limit is not None:
        remaining = min(remaining, limit)
    return time.monotonic() + max(remaining, 0.0)


def _request(event: dict[str, Any]) -> ExtractRequest:
    full_scan = event.get("full_scan", False)
    if not isinstance(full_scan, bool):
        raise SettingsError("extract event field full_scan must be true or false")
    return ExtractRequest(
        run_id=str(event.get("run_id") or "manual"),
        window_start=_instant(event, "window_start"),
        window_end=_instant(event, "window_end") or datetime.now(UTC),
        full_scan=full_scan,
    )


@handler()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action")
    lake, settings = _resources()
    if action is not None:
        return _fanned_out(str(action), event, context, lake, settings)
    request = _request(event)
    summary = with_fresh_credentials(
        lambda fresh: run_extract(
            source_db(fresh=fresh),
            lake,
            run_id=request.run_id,
            window_start=request.window_start,
            window_end=request.window_end,
            full_scan=request.full_scan,
            settings=settings,
        )
    )
    _count(summary)
    return summary


def _count(summary: dict[str, Any]) -> None:
    count_per_table("Rows", "extract", summary["rows"])
    count("ExtractSeconds", summary["seconds"], unit="Seconds")


def _fanned_out(
    action: str,
    event: dict[str, Any],
    context: Any,
    lake: Lake,
    settings: ExtractSettings,
) -> dict[str, Any]:
    attempt = attempt_id(event.get("attempt"))
    # A waiting step stops once its execution has ended: the other branch failed.
    ended = functools.partial(execution_ended, event.get("execution_arn"))
    if action == "hold_snapshot":
        request = _request(event)
        return with_fresh_credentials(
            lambda fresh: fanout.hold_snapshot(
                source_db(fresh=fresh),
                lake,
                request,
                attempt=attempt,
                settings=settings,
                deadline=_deadline(context),
                abandoned=ended,
                last_try=fresh,
            )
        )
    if action == "await_plan":
        return fanout.await_plan(
            lake,
            attempt=attempt,
            deadline=_deadline(context, PLAN_WAIT_SECONDS),
            abandoned=ended,
        )
    if action == "extract_table":
        table = event.get("table")
        if table not in LOAD_ORDER:
            raise SettingsError(f"extract event field table must name a source table: {table!r}")
        return with_fresh_credentials(
            lambda fresh: fanout.extract_table(
                source_db(fresh=fresh), lake, attempt=attempt, table=table, settings=settings
            )
        )
    if action == "commit":
        parts = event.get("parts")
        if not isinstance(parts, list):
            raise SettingsError("extract event field parts must be the list of table results")
        summary = fanout.commit_parts(lake, attempt=attempt, parts=parts)
        _count(summary)
        return summary
    raise SettingsError(
        "extract event field action must be hold_snapshot, await_plan, extract_table or commit, "
        f"not {action!r}"
    )
