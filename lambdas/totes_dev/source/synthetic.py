"""Synthetic totesys rows shaped like the real database (pure numpy/pyarrow, no database).

The shapes come from the measured facts about the real data: inserts only Monday to Friday
between 08:00 and 18:59, each sale or purchase inserting order + transaction + payment with one
identical created_at, last_updated equal to created_at on insert, payments flipping to paid at
07:55:10-07:55:12 on their payment_date (one identical time per day) if and only if that date is a
weekday later than the creation date, and the value ranges of the real columns. Every function
draws from the ``numpy.random.Generator`` it is given, so a seed fixes the output, and builds
whole columns at once: there is no Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from totes.tables import TIMESTAMP, source_table
from totes_dev.source.convert import money_from_cents

MS = np.timedelta64(1, "ms")
SEED_DAY = np.datetime64("2022-11-03", "D")
STATIC_CREATED = np.datetime64("2022-11-03T14:20:49.962", "ms")
PEOPLE_CREATED = np.datetime64("2022-11-03T14:20:51.563", "ms")
SEED_ORDERS_CREATED = np.datetime64("2022-11-03T14:20:52.186", "ms")
# Newest created_at of the real 2024-11-15 snapshot: generated history ends there.
HISTORY_END = np.datetime64("2024-11-15T14:40:10.188", "ms")

SEED_DESIGNS, SEED_SALES, SEED_PURCHASES = 10, 5, 5
# Rows per weekday after the seed day, from the real 2024-11-15 snapshot (531 weekdays).
SALES_PER_WEEKDAY = (11_187 - SEED_SALES) / 531
PURCHASES_PER_WEEKDAY = (4_649 - SEED_PURCHASES) / 531
DESIGNS_PER_WEEKDAY = (473 - SEED_DESIGNS) / 531

WORK_START = np.timedelta64(8, "h")
WORK_MINUTES = 11 * 60  # 08:00 to 18:59
FLIP_OFFSET = np.timedelta64(7 * 3600 + 55 * 60 + 10, "s").astype("timedelta64[ms]")

# Measured share of agreed_payment_date (0-6 days) and agreed_delivery_date (0-7 days) after the
# creation date; the payment offsets decide the share of payments that ever get paid (~61 %).
PAYMENT_OFFSET_P = np.array([0.073, 0.168, 0.162, 0.164, 0.168, 0.167, 0.098])
DELIVERY_OFFSET_P = np.array([0.059, 0.144, 0.141, 0.145, 0.142, 0.142, 0.138, 0.089])
PAYMENT_OFFSET_P /= PAYMENT_OFFSET_P.sum()
DELIVERY_OFFSET_P /= DELIVERY_OFFSET_P.sum()

N_ADDRESSES, N_COUNTERPARTIES, N_STAFF = 30, 20, 20
CURRENCIES = ("GBP", "USD", "EUR")
DEPARTMENTS = (
    ("Sales", "Manchester"),
    ("Purchasing", "Manchester"),
    ("Production", "Leeds"),
    ("Dispatch", "Leds"),  # the real data's typo, kept on purpose
    ("Finance", "Manchester"),
    ("Facilities", "Manchester"),
    ("Communications", "Leeds"),
    ("HR", "Leeds"),
)
PAYMENT_TYPES = ("SALES_RECEIPT", "SALES_REFUND", "PURCHASE_PAYMENT", "PURCHASE_REFUND")
SALES_RECEIPT, PURCHASE_PAYMENT = 1, 3
DESIGN_NAMES = np.array(
    ["Bronze", "Concrete", "Cotton", "Fresh", "Frozen", "Granite", "Metal", "Plastic", "Rubber",
     "Soft", "Steel", "Wooden"]
)  # fmt: skip
FIRST_NAMES = np.array(
    ["Ada", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kit", "Lea", "Max",
     "Nia", "Oli", "Pam", "Quin", "Ros", "Sam", "Tia"]
)  # fmt: skip
LAST_NAMES = np.array(
    ["Abbott", "Barker", "Cole", "Dunn", "Ellis", "Frost", "Grant", "Hale", "Irwin", "Jones",
     "Kerr", "Lowe", "Mace", "Nash", "Owen", "Pike", "Reed", "Shaw", "Tate", "Vale"]
)  # fmt: skip
CITIES = np.array(["Leeds", "York", "Bath", "Derby", "Hull", "Ely", "Wells", "Truro", "Ripon"])
COUNTRIES = np.array(["United Kingdom", "France", "Spain", "Norway", "Chile", "Japan", "Peru"])
_CODE_CHARS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


@dataclass
class Cursor:
    """Where generation stands: the next id of each growing table and the designs made so far."""

    next_ids: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("design", "sales_order", "purchase_order", "transaction", "payment"), 1
        )
    )
    # Every design's created_at, ascending, and its id: sales pick designs that already exist.
    design_times: np.ndarray = field(default_factory=lambda: np.array([], "datetime64[ms]"))
    design_ids: np.ndarray = field(default_factory=lambda: np.array([], np.int64))

    def take(self, table: str, count: int) -> np.ndarray:
        first = self.next_ids[table]
        self.next_ids[table] = first + count
        return np.arange(first, first + count, dtype=np.int64)


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype("datetime64[ms]"), TIMESTAMP)


def day_text(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D")


def _table(name: str, columns: dict[str, object]) -> pa.Table:
    """Arrays in the exact schema of the source table, so COPY sees the real types."""
    schema = source_table(name).arrow_schema
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], f.type) if not isinstance(columns[f.name], pa.Array)
         else columns[f.name] for f in schema],
        schema=schema,
    )  # fmt: skip


def flip_time(days: np.ndarray) -> np.ndarray:
    """When payments due on ``days`` flip to paid: 07:55:10-07:55:12, one value per day.

    The milliseconds come from the date itself (not the random generator), so the simulator
    and SQL can compute the same value: ``(days since 1970-01-01 * 7919) % 2000``.
    """
    days = days.astype("datetime64[D]")
    jitter = (days.astype(np.int64) * 7919) % 2000
    return days.astype("datetime64[ms]") + FLIP_OFFSET + jitter * MS


def payment_state(
    created: np.ndarray, payment_days: np.ndarray, now: np.datetime64
) -> tuple[np.ndarray, np.ndarray]:
    """(paid, last_updated) of payments as of ``now``."""
    flips = flip_time(payment_days)
    paid = (
        np.is_busday(payment_days.astype("datetime64[D]"))
        & (payment_days.astype("datetime64[D]") > created.astype("datetime64[D]"))
        & (flips <= now)
    )
    return paid, np.where(paid, flips, created.astype("datetime64[ms]"))


def working_times(
    rng: np.random.Generator, first_day: np.datetime64, end_day: np.datetime64, rate: float
) -> np.ndarray:
    """Sorted creation times on the weekdays in [first_day, end_day): Poisson ``rate`` a day,
    minutes spread over 08:00-18:59, seconds mostly :09-:13 like the real once-a-minute job."""
    days = np.arange(first_day, end_day, dtype="datetime64[D]")
    days = days[np.is_busday(days)]
    counts = rng.poisson(rate, len(days))
    total = int(counts.sum())
    minute = rng.integers(0, WORK_MINUTES, total)
    second = np.where(
        rng.random(total) < 0.97, rng.integers(9, 14, total), rng.integers(17, 55, total)
    )
    millis = rng.integers(0, 1000, total)
    offset = minute * 60_000 + second * 1000 + millis
    times = np.repeat(days, counts).astype("datetime64[ms]") + WORK_START + offset * MS
    return np.sort(times)


def static_tables(rng: np.random.Generator) -> dict[str, pa.Table]:
    """The six lookup tables with their real sizes; they never change afterwards."""
    n = N_ADDRESSES
    at_static = np.full(n, STATIC_CREATED)
    # Object arrays on both sides: numpy's stubs differ between releases on a None operand.
    absent = np.full(n, None, dtype=object)
    units = np.char.add("Unit ", np.arange(1, n + 1).astype(str)).astype(object)
    line2 = np.where(np.arange(n) < 10, units, absent)
    vales = np.char.add(rng.choice(CITIES, n), " Vale").astype(object)
    district = np.where(np.arange(n) % 15 < 8, vales, absent)
    address = _table(
        "address",
        {
            "address_id": np.arange(1, n + 1),
            "address_line_1": np.char.add(
                np.char.add(rng.integers(1, 9999, n).astype(str), " "),
                np.char.add(rng.choice(LAST_NAMES, n), " Road"),
            ),
            "address_line_2": list(rng.permutation(line2)),
            "district": list(rng.permutation(district)),
            "city": rng.choice(CITIES, n),
            "postal_code": rng.integers(10000, 99999, n).astype(str),
            "country": rng.choice(COUNTRIES, n),
            "phone": np.char.add("0", rng.integers(1000000000, 9999999999, n).astype(str)),
            "created_at": _ts(at_static),
            "last_updated": _ts(at_static),
        },
    )
    # 20 counterparties share 14 legal addresses, as in the real data.
    legal = np.concatenate([np.arange(1, 15), rng.choice(np.arange(1, 15), 6)])
    at_people = np.full(N_COUNTERPARTIES, PEOPLE_CREATED)
    counterparty = _table(
        "counterparty",
        {
            "counterparty_id": np.arange(1, N_COUNTERPARTIES + 1),
            "counterparty_legal_name": np.char.add(
                rng.choice(LAST_NAMES, N_COUNTERPARTIES), " Ltd"
            ),
            "legal_address_id": rng.permutation(legal),
            "commercial_contact": _names(rng, N_COUNTERPARTIES),
            "delivery_contact": _names(rng, N_COUNTERPARTIES),
            "created_at": _ts(at_people),
            "last_updated": _ts(at_people),
        },
    )
    currency = _table(
        "currency",
        {
            "currency_id": np.arange(1, 4),
            "currency_code": np.array(CURRENCIES),
            "created_at": _ts(at_static[:3]),
            "last_updated": _ts(at_static[:3]),
        },
    )
    department = _table(
        "department",
        {
            "department_id": np.arange(1, len(DEPARTMENTS) + 1),
            "department_name": np.array([d[0] for d in DEPARTMENTS]),
            "location": np.array([d[1] for d in DEPARTMENTS]),
            "manager": _names(rng, len(DEPARTMENTS)),
            "created_at": _ts(at_static[: len(DEPARTMENTS)]),
            "last_updated": _ts(at_static[: len(DEPARTMENTS)]),
        },
    )
    first, last = rng.choice(FIRST_NAMES, N_STAFF), rng.choice(LAST_NAMES, N_STAFF)
    emails = np.char.add(np.char.add(np.char.add(first, "."), last), "@terrifictotes.com")
    staff = _table(
        "staff",
        {
            "staff_id": np.arange(1, N_STAFF + 1),
            "first_name": first,
            "last_name": last,
            "department_id": rng.integers(1, len(DEPARTMENTS) + 1, N_STAFF),
            "email_address": np.char.lower(emails),
            "created_at": _ts(at_people[:N_STAFF]),
            "last_updated": _ts(at_people[:N_STAFF]),
        },
    )
    payment_type = _table(
        "payment_type",
        {
            "payment_type_id": np.arange(1, 5),
            "payment_type_name": np.array(PAYMENT_TYPES),
            "created_at": _ts(at_static[:4]),
            "last_updated": _ts(at_static[:4]),
        },
    )
    return {
        "address": address,
        "counterparty": counterparty,
        "currency": currency,
        "department": department,
        "staff": staff,
        "payment_type": payment_type,
    }


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.char.add(np.char.add(rng.choice(FIRST_NAMES, n), " "), rng.choice(LAST_NAMES, n))


def design_locations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fake Unix paths like the real file_location values."""
    roots = np.array(["/usr", "/private", "/opt", "/var", "/home", "/srv"])
    subs = np.array(["", "/share", "/local", "/media", "/lib", "/etc", "/bin", "/log", "/src"])
    return np.char.add(rng.choice(roots, n), rng.choice(subs, n))


def designs(rng: np.random.Generator, cursor: Cursor, times: np.ndarray) -> pa.Table:
    n = len(times)
    names = rng.choice(DESIGN_NAMES, n)
    days = np.datetime64("2022-01-01") + rng.integers(0, 365, n).astype("timedelta64[D]")
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    yyyymmdd = (
        (years.astype(np.int64) + 1970) * 10000
        + ((months - years).astype(np.int64) + 1) * 100
        + (days - months).astype(np.int64)
        + 1
    )
    stamp = yyyymmdd.astype(str)
    suffix = _codes(rng, n, 4, lower=True)
    file_name = np.char.add(
        np.char.add(np.char.add(np.char.add(np.char.lower(names), "-"), stamp), "-"),
        np.char.add(suffix, ".json"),
    )
    ids = cursor.take("design", n)
    cursor.design_times = np.concatenate([cursor.design_times, times.astype("datetime64[ms]")])
    cursor.design_ids = np.concatenate([cursor.design_ids, ids])
    return _table(
        "design",
        {
            "design_id": ids,
            "created_at": _ts(times),
            "design_name": names,
            "file_location": design_locations(rng, n),
            "file_name": file_name,
            "last_updated": _ts(times),
        },
    )


def _codes(rng: np.random.Generator, n: int, width: int, *, lower: bool = False) -> np.ndarray:
    """``n`` random codes of ``width`` characters from [A-Z0-9], built as one byte matrix."""
    chars = _CODE_CHARS[rng.integers(0, len(_CODE_CHARS), (n, width))]
    if lower:
        chars = np.where(chars >= ord("A"), chars + 32, chars).astype(np.uint8)
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(f"U{width}")


def _existing_design(rng: np.random.Generator, cursor: Cursor, times: np.ndarray) -> np.ndarray:
    """A design that already exists at each sale's time (ids grow with creation time)."""
    existing = np.searchsorted(cursor.design_times, times.astype("datetime64[ms]"), side="right")
    existing = np.maximum(existing, 1)
    return cursor.design_ids[(rng.random(len(times)) * existing).astype(np.int64)]


def orders(
    rng: np.random.Generator,
    cursor: Cursor,
    sale_times: np.ndarray,
    purchase_times: np.ndarray,
    now: np.datetime64,
) -> dict[str, pa.Table]:
    """Sales and purchases at the given times, each with its transaction and payment (same
    created_at), paid as of ``now``. Tables are returned in foreign-key order."""
    sale_times = sale_times.astype("datetime64[ms]")
    purchase_times = purchase_times.astype("datetime64[ms]")
    ns, npo = len(sale_times), len(purchase_times)

    sale = _order_common(rng, sale_times)
    sale_ids = cursor.take("sales_order", ns)
    units = rng.integers(1001, 99974, ns)
    unit_cents = rng.integers(200, 401, ns)
    sales_order = _table(
        "sales_order",
        {
            "sales_order_id": sale_ids,
            "created_at": _ts(sale_times),
            "last_updated": _ts(sale_times),
            "design_id": _existing_design(rng, cursor, sale_times),
            "units_sold": units,
            "unit_price": money_from_cents(unit_cents, np.ones(ns, bool)),
            **sale,
        },
    )

    purchase = _order_common(rng, purchase_times)
    purchase_ids = cursor.take("purchase_order", npo)
    quantity = rng.integers(1, 1000, npo)
    item_cents = rng.integers(332, 99908, npo)
    purchase_order = _table(
        "purchase_order",
        {
            "purchase_order_id": purchase_ids,
            "created_at": _ts(purchase_times),
            "last_updated": _ts(purchase_times),
            "item_code": _codes(rng, npo, 7),
            "item_quantity": quantity,
            "item_unit_price": money_from_cents(item_cents, np.ones(npo, bool)),
            **purchase,
        },
    )

    # One transaction and one payment per order, numbered in creation order (sales first on ties).
    is_sale = np.concatenate([np.ones(ns, bool), np.zeros(npo, bool)])
    order = np.argsort(np.concatenate([sale_times, purchase_times]), kind="stable")
    is_sale = is_sale[order]
    created = np.concatenate([sale_times, purchase_times])[order]
    n = ns + npo
    transaction_ids = cursor.take("transaction", n)
    payment_ids = cursor.take("payment", n)
    so_ids = np.concatenate([sale_ids, np.zeros(npo, np.int64)])[order]
    po_ids = np.concatenate([np.zeros(ns, np.int64), purchase_ids])[order]
    transaction = _table(
        "transaction",
        {
            "transaction_id": transaction_ids,
            "transaction_type": np.where(is_sale, "SALE", "PURCHASE"),
            "sales_order_id": pa.array(so_ids, pa.int64(), mask=~is_sale),
            "purchase_order_id": pa.array(po_ids, pa.int64(), mask=is_sale),
            "created_at": _ts(created),
            "last_updated": _ts(created),
        },
    )
    pick = {
        key: np.concatenate([sale[key], purchase[key]])[order]
        for key in ("counterparty_id", "currency_id", "agreed_payment_date")
    }
    cents = np.concatenate([units * unit_cents, quantity * item_cents])[order]
    payment_days = pick["agreed_payment_date"].astype("datetime64[D]")
    paid, last_updated = payment_state(created, payment_days, now)
    payment = _table(
        "payment",
        {
            "payment_id": payment_ids,
            "created_at": _ts(created),
            "last_updated": _ts(last_updated),
            "transaction_id": transaction_ids,
            "counterparty_id": pick["counterparty_id"],
            "payment_amount": money_from_cents(cents, np.ones(n, bool)),
            "currency_id": pick["currency_id"],
            "payment_type_id": np.where(is_sale, SALES_RECEIPT, PURCHASE_PAYMENT),
            "paid": paid,
            "payment_date": pick["agreed_payment_date"],
            "company_ac_number": rng.integers(10_000_000, 100_000_000, n),
            "counterparty_ac_number": rng.integers(10_000_000, 100_000_000, n),
        },
    )
    return {
        "sales_order": sales_order,
        "purchase_order": purchase_order,
        "transaction": transaction,
        "payment": payment,
    }


def _order_common(rng: np.random.Generator, times: np.ndarray) -> dict[str, np.ndarray]:
    n = len(times)
    days = times.astype("datetime64[D]")
    return {
        "staff_id": rng.integers(1, N_STAFF + 1, n),
        "counterparty_id": rng.integers(1, N_COUNTERPARTIES + 1, n),
        "currency_id": rng.integers(1, len(CURRENCIES) + 1, n),
        "agreed_delivery_date": day_text(days + rng.choice(8, n, p=DELIVERY_OFFSET_P)),
        "agreed_payment_date": day_text(days + rng.choice(7, n, p=PAYMENT_OFFSET_P)),
        "agreed_delivery_location_id": rng.integers(1, N_ADDRESSES + 1, n),
    }


def seed_day(rng: np.random.Generator, cursor: Cursor) -> dict[str, pa.Table]:
    """2022-11-03: the lookup tables, designs 1-10 and five sales and five purchases."""
    tables = static_tables(rng)
    tables["design"] = designs(rng, cursor, np.full(SEED_DESIGNS, STATIC_CREATED))
    jitter = rng.integers(0, 3, SEED_SALES + SEED_PURCHASES) * MS
    times = SEED_ORDERS_CREATED + jitter
    tables.update(orders(rng, cursor, times[:SEED_SALES], times[SEED_SALES:], HISTORY_END))
    return tables


def history_chunk(
    rng: np.random.Generator,
    cursor: Cursor,
    first_day: np.datetime64,
    end_day: np.datetime64,
    *,
    scale: float,
    now: np.datetime64 = HISTORY_END,
) -> dict[str, pa.Table]:
    """Everything created on the weekdays in [first_day, end_day) up to ``now``, ``scale``
    times the real rates, in foreign-key order."""
    design_times = working_times(rng, first_day, end_day, DESIGNS_PER_WEEKDAY * scale)
    sale_times = working_times(rng, first_day, end_day, SALES_PER_WEEKDAY * scale)
    purchase_times = working_times(rng, first_day, end_day, PURCHASES_PER_WEEKDAY * scale)
    tables = {"design": designs(rng, cursor, design_times[design_times <= now])}
    tables.update(
        orders(
            rng, cursor, sale_times[sale_times <= now], purchase_times[purchase_times <= now], now
        )
    )
    return tables


def times_in_window(
    rng: np.random.Generator,
    start: np.datetime64,
    end: np.datetime64,
    per_weekday: float,
    *,
    minimum: int = 0,
) -> np.ndarray:
    """Sorted creation times in (start, end] at ``per_weekday`` rows per working day, on the
    working minutes (weekdays 08:00-18:59) of the window; at least ``minimum`` of them, placed
    anywhere in the window when it has no working minute, so a demo always shows activity."""
    start, end = start.astype("datetime64[ms]"), end.astype("datetime64[ms]")
    minute = np.timedelta64(1, "m")
    grid = np.arange(start.astype("datetime64[m]"), end.astype("datetime64[m]") + minute, minute)
    hours = (grid - grid.astype("datetime64[D]")).astype("timedelta64[h]").astype(np.int64)
    working = grid[np.is_busday(grid.astype("datetime64[D]")) & (hours >= 8) & (hours <= 18)]
    count = int(rng.poisson(per_weekday / WORK_MINUTES * len(working))) if len(working) else 0
    count = max(count, minimum)
    times: np.ndarray[Any, Any]  # numpy releases infer the two branches' types differently
    if len(working):
        second = rng.integers(9, 14, count)
        times = (
            rng.choice(working, count).astype("datetime64[ms]")
            + (second * 1000 + rng.integers(0, 1000, count)) * MS
        )
    else:
        span = int((end - start) / MS)
        times = start + rng.integers(1, max(span, 1) + 1, count) * MS
    # the grid's first and last minutes stick out of the window: fold them back inside
    times = np.clip(times, start + MS, end)
    return np.sort(times)
