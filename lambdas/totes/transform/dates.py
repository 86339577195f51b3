"""Date and time rules of the warehouse (pure Arrow, no I/O).

Conventions decided here, once:

* ``day_of_week`` is ISO 8601: 1 = Monday .. 7 = Sunday. It is the international standard,
  PostgreSQL's ``EXTRACT(ISODOW)`` and Python's ``isoweekday()`` agree with it, and no value is 0,
  so a forgotten conversion from a zero-based weekday shows up as a wrong name, never silently.
* ``dim_date`` covers every referenced date plus the whole calendar years those dates touch: a
  report grouped by day then has no holes inside a year, and the rows a batch adds stay bounded
  (at most a few years of ~365 rows) however the source dates wander.
* Source timestamps are naive wall-clock values; they are split, never converted.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from totes.contracts.warehouse import DIM_DATE

DATE = pa.date32()
TIME = pa.time32("ms")

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

DIM_DATE_SCHEMA = DIM_DATE.data_schema

_TEXT_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def split_timestamp(values: pa.Array | pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Date part and millisecond time part of naive timestamps."""
    values = pc.cast(values, pa.timestamp("ms"))
    return pc.cast(values, DATE), pc.cast(values, TIME)


def parse_text_dates(
    values: pa.Array | pa.ChunkedArray,
) -> tuple[pa.Array, pa.Array]:
    """Parse 'YYYY-MM-DD' strictly; return the dates and a mask of the values that are not one.

    Arrow's strptime accepts '2024-1-5' and rolls '2024-02-30' over to March, so a value counts
    only if it has exactly the shape and formats back to itself. NULL is not flagged here (the
    NOT NULL rule reports it with its own reason) and stays NULL. Date columns repeat a few
    hundred distinct values, so each distinct text is parsed once.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(pc.cast(values, pa.string()))
    distinct = encoded.dictionary
    parsed = pc.cast(pc.strptime(distinct, format="%Y-%m-%d", unit="s", error_is_null=True), DATE)
    shaped = pc.match_substring_regex(distinct, _TEXT_DATE)
    round_trip = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), distinct)
    bad = pc.invert(pc.fill_null(pc.and_kleene(shaped, round_trip), False))
    dates = pc.if_else(bad, pa.scalar(None, DATE), parsed)
    return pc.take(dates, encoded.indices), pc.fill_null(pc.take(bad, encoded.indices), False)


def iso_day_of_week(dates: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """1 = Monday .. 7 = Sunday (see the module docstring for why ISO)."""
    return pc.cast(pc.day_of_week(dates, count_from_zero=False, week_start=1), pa.int64())


def _names(numbers: pa.Array | pa.ChunkedArray, names: tuple[str, ...]) -> pa.Array:
    return pc.take(pa.array(names), pc.subtract(numbers, 1))


def calendar(dates: pa.Array | pa.ChunkedArray) -> pa.Table:
    """dim_date rows for the given dates plus every day of the years they touch, sorted."""
    valid = pc.drop_null(dates)
    if len(valid) == 0:
        return DIM_DATE_SCHEMA.empty_table()
    first, last = pc.min_max(pc.cast(valid, DATE)).values()
    start = date(first.as_py().year, 1, 1).toordinal()
    end = date(last.as_py().year, 12, 31).toordinal()
    epoch = date(1970, 1, 1).toordinal()
    days = pa.array(range(start - epoch, end - epoch + 1), pa.int32()).cast(DATE)
    return dim_date_rows(days)


def dim_date_rows(days: pa.Array | pa.ChunkedArray) -> pa.Table:
    days = pc.cast(days, DATE)
    year = pc.cast(pc.year(days), pa.int64())
    month = pc.cast(pc.month(days), pa.int64())
    dow = iso_day_of_week(days)
    return pa.table(
        [
            days,
            year,
            month,
            pc.cast(pc.day(days), pa.int64()),
            dow,
            _names(dow, DAY_NAMES),
            _names(month, MONTH_NAMES),
            pc.cast(pc.quarter(days), pa.int64()),
        ],
        schema=DIM_DATE_SCHEMA,
    )
