from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from totes.batches import new_batch_id
from totes.extract.window import (
    commit_clock,
    full_scan_due,
    lower_bound,
    naive_utc,
)


def test_naive_utc_keeps_the_utc_wall_time_and_refuses_naive_input() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert naive_utc(datetime(2024, 2, 23, 13, 0, tzinfo=plus_two)) == datetime(2024, 2, 23, 11)
    with pytest.raises(ValueError, match="no time zone"):
        naive_utc(datetime(2024, 2, 23))


def test_lower_bound_is_watermark_minus_overlap_or_none() -> None:
    assert lower_bound(None, timedelta(minutes=10)) is None
    assert lower_bound(datetime(2024, 1, 1, 0, 10), timedelta(minutes=10)) == datetime(2024, 1, 1)


@pytest.mark.parametrize(
    ("cadence", "requested", "last", "end", "due"),
    [
        ("daily", False, None, datetime(2024, 1, 2, tzinfo=UTC), True),
        (
            "daily",
            False,
            datetime(2024, 1, 2, tzinfo=UTC),
            datetime(2024, 1, 2, 23, tzinfo=UTC),
            False,
        ),
        (
            "daily",
            False,
            datetime(2024, 1, 1, 23, tzinfo=UTC),
            datetime(2024, 1, 2, tzinfo=UTC),
            True,
        ),
        # catching up older windows after a newer scan does not rescan
        ("daily", False, datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), False),
        ("on-demand", False, None, datetime(2024, 1, 2, tzinfo=UTC), False),
        ("on-demand", True, None, datetime(2024, 1, 2, tzinfo=UTC), True),
        (
            "every-run",
            False,
            datetime(2024, 1, 2, tzinfo=UTC),
            datetime(2024, 1, 2, tzinfo=UTC),
            True,
        ),
    ],
)
def test_full_scan_cadence(
    cadence: str, requested: bool, last: datetime | None, end: datetime, due: bool
) -> None:
    assert full_scan_due(cadence, requested, last, end) is due


def test_commit_clock_never_goes_back_behind_the_previous_batch() -> None:
    previous = new_batch_id(datetime(2024, 1, 2, 12, tzinfo=UTC))
    earlier = datetime(2024, 1, 1, tzinfo=UTC)
    assert commit_clock(earlier, previous) == datetime(2024, 1, 2, 12, 0, 0, 1000, tzinfo=UTC)
    later = datetime(2024, 1, 3, tzinfo=UTC)
    assert commit_clock(later, previous) == later
    assert commit_clock(earlier, None) == earlier
