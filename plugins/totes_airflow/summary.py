"""What a pipeline run did, from the state machine's output and the warehouse's newest source
change: rows per table for each stage, quarantined rows, and freshness, the number the
30-minute promise is about.

Pure: the caller queries the warehouse (:data:`NEWEST_CHANGE_SQL`) and passes the answer in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

FRESHNESS_TARGET = timedelta(minutes=30)
SCHEDULE_INTERVAL = timedelta(minutes=20)
# A run for [T - 20 min, T) is queued at T and delivers changes made since T - 20 min: to keep
# the oldest of them within 30 minutes it must finish by T + 10 min.
FRESHNESS_DEADLINE = FRESHNESS_TARGET - SCHEDULE_INTERVAL

# The newest source ``last_updated`` among the fact rows now in the warehouse. The load records it
# per batch in the ledger (migration 0003), so this reads one small table instead of scanning
# every fact table. Source timestamps are UTC without a zone.
NEWEST_CHANGE_SQL = "SELECT max(newest_change) FROM warehouse_batch_ledger"


class SummaryError(ValueError):
    """The execution output lacks what a run summary needs."""


def _timestamp(output: Mapping[str, Any], key: str) -> datetime:
    raw = output.get(key)
    if not isinstance(raw, str):
        raise SummaryError(f"execution output has no {key} timestamp")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SummaryError(f"execution output {key} is not an ISO-8601 timestamp: {raw}") from None
    if parsed.tzinfo is None:
        raise SummaryError(f"execution output {key} has no time zone: {raw}")
    return parsed


def _counts(stage_output: Any, key: str) -> dict[str, int]:
    if not isinstance(stage_output, Mapping):
        return {}
    counts = stage_output.get(key) or {}
    if not isinstance(counts, Mapping):
        raise SummaryError(f"execution output {key} is not a table-to-count mapping")
    return {str(table): int(n) for table, n in sorted(counts.items())}


def as_utc(value: datetime) -> datetime:
    """A source timestamp (UTC, stored without a zone) as an aware datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def freshness_lag(newest_change: datetime | None, finished_at: datetime) -> timedelta | None:
    """How old the newest source change visible in the warehouse was when the run finished.

    This is what a reader of the warehouse sees: nothing changed in totesys after
    ``newest_change`` is in the warehouse yet. None when the warehouse holds no fact yet. While
    totesys is idle the lag grows although nothing is late; :func:`delivery_bound` says whether
    the pipeline kept its side of the promise.
    """
    if newest_change is None:
        return None
    return finished_at - as_utc(newest_change)


def delivery_bound(window_start: datetime, finished_at: datetime) -> timedelta:
    """The longest any change delivered by this run can have waited.

    The previous run read the source when its window closed, at this run's ``window_start``; a
    change made just after that read is first delivered when this run finishes.
    """
    return finished_at - window_start


def freshness_verdict(
    lag: timedelta | None, bound: timedelta, fact_versions_added: Mapping[str, int]
) -> str:
    """``met``, ``idle``, ``missed`` or ``no data``: whether the changes this run delivered
    reached the warehouse within the target.

    The lag alone cannot say: while totesys is idle it grows with nothing late. After a
    successful run every change before its window's end is in the warehouse, so a run that added
    no fact version delivered nothing that could be late (``idle``: the newest change is simply
    old); one that did kept the promise if the warehouse is fresh or if even a change made just
    after the previous read (the delivery bound) arrived in time.
    """
    if lag is None:
        return "no data"
    if lag <= FRESHNESS_TARGET:
        return "met"
    if not any(fact_versions_added.values()):
        return "idle"
    return "met" if bound <= FRESHNESS_TARGET else "missed"


def summarise(output: Mapping[str, Any], newest_change: datetime | None = None) -> dict[str, Any]:
    """A JSON-ready summary of one execution's output (see ``infra/state_machine.asl.json``)
    and of the warehouse's newest source change after it."""
    if not isinstance(output, Mapping):
        raise SummaryError(f"execution output is not a JSON object: {output!r}")
    window_start = _timestamp(output, "window_start")
    window_end = _timestamp(output, "window_end")
    finished_at = _timestamp(output, "finished_at")
    lag = freshness_lag(newest_change, finished_at)
    bound = delivery_bound(window_start, finished_at)
    load = output.get("load")
    skipped = bool(output.get("skipped"))
    added = _counts(load, "fact_versions_added")
    verdict = freshness_verdict(lag, bound, added)
    return {
        "run_id": output.get("run_id"),
        # Another cycle held the lock for the execution's whole wait and did the work instead.
        "skipped": skipped,
        "skipped_reason": str(output.get("skipped_reason") or "") if skipped else None,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "finished_at": finished_at.isoformat(),
        "full_scan": bool(output.get("full_scan")),
        "batches": list(load.get("batches") or []) if isinstance(load, Mapping) else [],
        "extracted": _counts(output.get("extract"), "rows"),
        "transformed": _counts(output.get("transform"), "rows"),
        "quarantined": _counts(output.get("transform"), "quarantined"),
        "loaded": _counts(load, "rows"),
        "fact_versions_added": added,
        "newest_change": None if newest_change is None else as_utc(newest_change).isoformat(),
        "freshness_lag_seconds": None if lag is None else round(lag.total_seconds(), 3),
        "delivery_bound_seconds": round(bound.total_seconds(), 3),
        "freshness_target_seconds": int(FRESHNESS_TARGET.total_seconds()),
        "freshness_verdict": verdict,
        "within_freshness_target": verdict in ("met", "idle"),
    }


_SECTIONS = (
    ("extracted", "extracted"),
    ("transformed", "transformed"),
    ("quarantined", "quarantined"),
    ("loaded", "loaded"),
    ("fact versions added", "fact_versions_added"),
)


def _freshness_line(summary: Mapping[str, Any]) -> str:
    lag = summary.get("freshness_lag_seconds")
    target = summary["freshness_target_seconds"]
    if lag is None:
        return f"freshness: no fact in the warehouse yet (target {target} s)"
    verdict = _VERDICT_WORDS[summary["freshness_verdict"]]
    return (
        f"freshness lag {lag:.0f} s behind the newest source change {summary['newest_change']} "
        f"(target {target} s: {verdict}); delivery bound {summary['delivery_bound_seconds']:.0f} s"
    )


_VERDICT_WORDS = {"met": "met", "idle": "met, nothing new to deliver", "missed": "MISSED"}


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the lines a person reads in the task log."""
    lines = [
        f"run {summary['run_id']}: window {summary['window_start']} to {summary['window_end']}, "
        f"finished {summary['finished_at']}",
    ]
    if summary.get("skipped"):
        lines.append(f"SKIPPED, nothing done: {summary['skipped_reason']}")
        return "\n".join(lines)
    lines.append(_freshness_line(summary))
    for title, key in _SECTIONS:
        counts: Mapping[str, int] = summary[key]
        if counts:
            rows = ", ".join(f"{table}={n}" for table, n in counts.items())
            lines.append(f"{title} ({sum(counts.values())}): {rows}")
        else:
            lines.append(f"{title}: nothing")
    return "\n".join(lines)


def _cell(text: str) -> str:
    # Table names and counts only, but a skip reason is free text: keep it inside its cell.
    return text.replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_note(summary: Mapping[str, Any]) -> str:
    """The summary as the DAG run's note, which the UI renders as Markdown on the run.

    The run page previews a note's first line, so that line carries the verdicts: freshness
    against the target and how many rows were quarantined.
    """
    window = (
        f"Window {summary['window_start']} to {summary['window_end']}, "
        f"finished {summary['finished_at']}"
    )
    if summary.get("skipped"):
        reason = _cell(str(summary["skipped_reason"]))
        return f"**Skipped**, nothing done: {reason}\n\n{window}"
    lag = summary.get("freshness_lag_seconds")
    if lag is None:
        freshness = "**Freshness**: no fact in the warehouse yet"
    else:
        verdict = _VERDICT_WORDS[summary["freshness_verdict"]].replace("MISSED", "**MISSED**")
        freshness = (
            f"**Freshness** {_duration(lag)} behind the newest source change "
            f"(target {summary['freshness_target_seconds'] // 60} min: {verdict})"
        )
    extracted: Mapping[str, int] = summary["extracted"]
    quarantined: Mapping[str, int] = summary["quarantined"]
    total_quarantined = sum(quarantined.values())
    lines = [
        f"{freshness}; **quarantined** {total_quarantined}"
        + (" (`totes quarantine list`)" if total_quarantined else ""),
        "",
        f"{window}; newest source change {summary['newest_change']}; "
        f"extracted {sum(extracted.values())} rows from {len(extracted)} source tables",
        "",
        "| table | loaded | versions added | quarantined |",
        "|---|---:|---:|---:|",
    ]
    loaded: Mapping[str, int] = summary["loaded"]
    added: Mapping[str, int] = summary["fact_versions_added"]
    changed = (loaded, added, quarantined)
    tables = sorted(t for t in {*loaded, *added, *quarantined} if any(c.get(t) for c in changed))
    for table in tables:
        cells = [str(counts.get(table, 0)) for counts in changed]
        lines.append(f"| {_cell(table)} | " + " | ".join(cells) + " |")
    if not tables:
        lines.append("| nothing loaded | 0 | 0 | 0 |")
    return "\n".join(lines)


# The XCom key the summary task stores the note under, which the run-note listener reads.
NOTE_XCOM_KEY = "note"
# Airflow stores a run's note in a 1000-character column.
NOTE_LIMIT = 1000
_CUT = "\n\n(cut short: the summary task's XCom has it all)"


def fit_note(note: str, limit: int = NOTE_LIMIT) -> str:
    """``note`` within Airflow's limit, cut at a line so the Markdown stays well formed."""
    if len(note) <= limit:
        return note
    kept = note[: limit - len(_CUT)]
    return kept[: kept.rfind("\n")] + _CUT
