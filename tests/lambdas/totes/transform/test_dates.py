from __future__ import annotations

from datetime import date, datetime, time

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from totes.transform.dates import (
    DAY_NAMES,
    MONTH_NAMES,
    calendar,
    dim_date_rows,
    iso_day_of_week,
    parse_text_dates,
    split_timestamp,
)

MS_DATETIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def test_a_known_sunday_is_day_seven_and_named_without_padding() -> None:
    row = dim_date_rows(pa.array([date(2024, 11, 17)], pa.date32())).to_pylist()[0]
    assert row == {
        "date_id": date(2024, 11, 17),
        "year": 2024,
        "month": 11,
        "day": 17,
        "day_of_week": 7,
        "day_name": "Sunday",
        "month_name": "November",
        "quarter": 4,
    }


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31)))
def test_day_of_week_is_iso_and_names_come_from_the_fixed_lists(day: date) -> None:
    row = dim_date_rows(pa.array([day], pa.date32())).to_pylist()[0]
    assert row["day_of_week"] == day.isoweekday()
    assert row["day_name"] == DAY_NAMES[day.isoweekday() - 1]
    assert row["month_name"] == MONTH_NAMES[day.month - 1]
    assert row["quarter"] == (day.month - 1) // 3 + 1


def test_iso_day_of_week_counts_monday_as_one() -> None:
    days = pa.array([date(2024, 11, 18), date(2024, 11, 17)], pa.date32())
    assert iso_day_of_week(days).to_pylist() == [1, 7]


@given(MS_DATETIMES)
def test_split_keeps_every_millisecond(moment: datetime) -> None:
    day, clock = split_timestamp(pa.array([moment], pa.timestamp("ms")))
    assert day.type == pa.date32()
    assert clock.type == pa.time32("ms")
    assert datetime.combine(day[0].as_py(), clock[0].as_py()) == moment


def test_a_whole_second_keeps_its_zero_milliseconds() -> None:
    _, clock = split_timestamp(pa.array([datetime(2024, 11, 15, 14, 40, 10)], pa.timestamp("ms")))
    assert clock[0].as_py() == time(14, 40, 10)


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_every_real_date_parses_from_its_iso_text(day: date) -> None:
    parsed, bad = parse_text_dates(pa.array([day.isoformat()]))
    assert parsed.to_pylist() == [day]
    assert bad.to_pylist() == [False]


@given(st.text(max_size=12))
def test_text_that_is_not_exactly_a_date_is_flagged(text: str) -> None:
    try:
        exact = date.fromisoformat(text).isoformat() == text
    except ValueError:
        exact = False
    parsed, bad = parse_text_dates(pa.array([text]))
    assert bad.to_pylist() == [not exact]
    assert (parsed[0].as_py() is None) == (not exact)


def test_near_misses_are_flagged_and_null_stays_null() -> None:
    values = ["2024-02-30", "2024-1-05", "24-11-15", " 2024-11-15", "2024-11-15T00:00", None]
    parsed, bad = parse_text_dates(pa.array(values, pa.string()))
    assert bad.to_pylist() == [True, True, True, True, True, False]
    assert parsed.null_count == len(values)


def test_calendar_covers_the_referenced_dates_and_the_whole_years_they_touch() -> None:
    dates = pa.array([date(2022, 11, 3), None, date(2024, 11, 22)], pa.date32())
    table = calendar(dates)
    days = table.column("date_id").to_pylist()
    assert days[0] == date(2022, 1, 1)
    assert days[-1] == date(2024, 12, 31)
    assert len(days) == len(set(days)) == 365 + 365 + 366
    assert pc.all(pc.is_in(pc.drop_null(dates), table.column("date_id"))).as_py()


def test_no_dates_means_no_calendar() -> None:
    assert calendar(pa.array([None], pa.date32())).num_rows == 0
