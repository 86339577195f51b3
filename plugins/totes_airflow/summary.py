"""What a pipeline run did, from the state machine's output: rows per table for each stage and
the freshness lag, the number the 30-minute freshness target is about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

FRESHNESS_TARGET = timedelta(minutes=30)


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


def freshness_lag(window_start: datetime, finished_at: datetime) -> timedelta:
    """The longest a source change could have waited to reach the warehouse in this run.

    The previous run read the source when its window closed, at this run's ``window_start``; any
    change after that read is first delivered by this run, when its execution finishes. So the
    oldest change this run delivers waited at most ``finished_at - window_start``.
    """
    return finished_at - window_start


def summarise(output: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready summary of one execution's output (see ``infra/state_machine.asl.json``)."""
    if not isinstance(output, Mapping):
        raise SummaryError(f"execution output is not a JSON object: {output!r}")
    window_start = _timestamp(output, "window_start")
    window_end = _timestamp(output, "window_end")
    finished_at = _timestamp(output, "finished_at")
    lag = freshness_lag(window_start, finished_at)
    load = output.get("load")
    skipped = bool(output.get("skipped"))
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
        "fact_versions_added": _counts(load, "fact_versions_added"),
        "freshness_lag_seconds": round(lag.total_seconds(), 3),
        "freshness_target_seconds": int(FRESHNESS_TARGET.total_seconds()),
        "within_freshness_target": lag <= FRESHNESS_TARGET,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the lines a person reads in the task log."""
    lines = [
        f"run {summary['run_id']}: window {summary['window_start']} to {summary['window_end']}, "
        f"finished {summary['finished_at']}",
    ]
    if summary.get("skipped"):
        lines.append(f"SKIPPED, nothing done: {summary['skipped_reason']}")
        return "\n".join(lines)
    lines += [
        f"freshness lag {summary['freshness_lag_seconds']:.0f} s "
        f"(target {summary['freshness_target_seconds']} s: "
        f"{'met' if summary['within_freshness_target'] else 'MISSED'})",
    ]
    for title, key in (
        ("extracted", "extracted"),
        ("transformed", "transformed"),
        ("quarantined", "quarantined"),
        ("loaded", "loaded"),
        ("fact versions added", "fact_versions_added"),
    ):
        counts: Mapping[str, int] = summary[key]
        if counts:
            rows = ", ".join(f"{table}={n}" for table, n in counts.items())
            lines.append(f"{title} ({sum(counts.values())}): {rows}")
        else:
            lines.append(f"{title}: nothing")
    return "\n".join(lines)
