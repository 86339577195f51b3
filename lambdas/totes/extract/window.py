"""Window, watermark and cadence arithmetic (pure).

Windows arrive as timezone-aware UTC instants; the source stores naive wall-clock timestamps that
must never be converted, so bounds are compared as naive UTC wall times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from totes.batches import batch_time


def naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; windows are UTC instants")
    return moment.astimezone(UTC).replace(tzinfo=None)


def lower_bound(watermark: datetime | None, overlap: timedelta) -> datetime | None:
    """Where the next re-read starts: the overlap catches rows that commit late with a
    ``last_updated`` slightly in the past. None (read from the beginning) before any capture."""
    return None if watermark is None else watermark - overlap


def full_scan_due(
    cadence: str, requested: bool, last_full_scan_at: datetime | None, window_end: datetime
) -> bool:
    """``daily`` scans once per UTC date of the window end; a catch-up of older windows after a
    newer scan does not rescan."""
    if requested or cadence == "every-run":
        return True
    if cadence == "on-demand":
        return False
    if last_full_scan_at is None:
        return True
    return last_full_scan_at.astimezone(UTC).date() < window_end.astimezone(UTC).date()


def commit_clock(now: datetime, previous_batch_id: str | None) -> datetime:
    """The batch's clock, strictly after the previous batch so that manifest keys stay ordered
    even when a clock steps back."""
    now = now.astimezone(UTC)
    if previous_batch_id is None:
        return now
    floor = batch_time(previous_batch_id) + timedelta(milliseconds=1)
    return max(now, floor)
