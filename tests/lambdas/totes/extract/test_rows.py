"""Reading table rows through the ADBC driver inside a snapshot, against a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from totes.errors import SourceError
from totes.extract import reader
from totes.extract.rows import SnapshotRows
from totes.settings import DbSettings
from totes.tables import source_table

T0 = datetime(2024, 1, 2, 9, 30, 0, 100000)
TRICKY = [
    "plain",
    "",  # an empty string is a value, not NULL
    'quote " and, comma',
    "two\nlines",
    "NULL",
    "Café ünïcødé",
]


@pytest.fixture
def addresses(source_empty: DbSettings) -> DbSettings:
    with psycopg.connect(**source_empty.conninfo(), autocommit=True) as conn:
        for i, text in enumerate(TRICKY, start=1):
            conn.execute(
                "INSERT INTO address (address_id, address_line_1, address_line_2, district, city,"
                " postal_code, country, phone, created_at, last_updated)"
                " VALUES (%s, %s, %s, NULL, 'c', 'p', 'k', 'ph', %s, %s)",
                (i, text, text if i % 2 else None, T0, T0.replace(minute=i)),
            )
    return source_empty


def _read(db: DbSettings, table: str = "address", **kwargs: object) -> pa.Table:
    with (
        SnapshotRows.open(db, snapshot=None) as rows,
        rows.start(source_table(table), [], **kwargs) as read,  # type: ignore[arg-type]
    ):
        batches = list(read)
    return pa.Table.from_batches(batches)


def test_values_survive_exactly_and_null_stays_apart_from_empty(addresses: DbSettings) -> None:
    rows = _read(addresses, lower=None, upper=None)
    assert rows.column("address_line_1").to_pylist() == TRICKY
    assert rows.column("address_line_2").to_pylist() == [
        text if i % 2 else None for i, text in enumerate(TRICKY, start=1)
    ]
    assert rows.column("district").null_count == len(TRICKY)
    assert rows.schema.field("address_id").type == pa.int64()
    assert rows.column("created_at").type == pa.timestamp("ms")
    assert rows.column("created_at")[0].as_py() == T0
    hashes = rows.column("_content_hash").to_pylist()
    assert all(len(h) == 16 for h in hashes)
    assert len(set(hashes)) == len(TRICKY)  # "", "NULL" and NULL all hash apart


def test_money_enums_and_flags_arrive_in_their_landing_types(source_empty: DbSettings) -> None:
    with psycopg.connect(**source_empty.conninfo(), autocommit=True) as conn:
        # The referenced rows do not matter to the reader: foreign-key triggers off.
        conn.execute("SET session_replication_role = replica")
        for i, amount in enumerate(("0.01", "12345678.90", "981451.44"), start=1):
            conn.execute(
                "INSERT INTO payment (payment_id, created_at, last_updated, transaction_id,"
                " counterparty_id, payment_amount, currency_id, payment_type_id, paid,"
                " payment_date, company_ac_number, counterparty_ac_number)"
                " VALUES (%s, %s, %s, %s, 1, %s, 1, 1, %s, '2024-01-02', 12345678, 87654321)",
                (i, T0, T0, i, amount, i % 2 == 0),
            )
        conn.execute("INSERT INTO payment_type VALUES (1, 'SALES_RECEIPT', %s, %s)", (T0, T0))
    payments = _read(source_empty, "payment", lower=None, upper=None)
    assert payments.schema.field("payment_amount").type == pa.decimal128(10, 2)
    assert payments.column("payment_amount").to_pylist() == [
        Decimal("0.01"),
        Decimal("12345678.90"),
        Decimal("981451.44"),
    ]
    assert payments.column("paid").to_pylist() == [False, True, False]
    types = _read(source_empty, "payment_type", lower=None, upper=None)
    assert types.column("payment_type_name").to_pylist() == ["SALES_RECEIPT"]


def test_small_batches_give_the_same_rows(addresses: DbSettings) -> None:
    with (
        SnapshotRows.open(addresses, snapshot=None) as rows,
        rows.start(source_table("address"), [], None, None, batch_bytes=64) as read,
    ):
        batches = list(read)
    assert len(batches) > 2
    assert pa.Table.from_batches(batches).equals(_read(addresses, lower=None, upper=None))


def test_a_drifted_column_is_read_but_left_out_of_the_content_hash(
    addresses: DbSettings,
) -> None:
    before = _read(addresses, lower=None, upper=None)
    with psycopg.connect(**addresses.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE address ADD COLUMN note text DEFAULT 'new'")
        conn.execute("ALTER TABLE address ADD COLUMN due date DEFAULT '2024-03-04'")
    with (
        SnapshotRows.open(addresses, snapshot=None) as rows,
        rows.start(source_table("address"), ["note", "due"], None, None) as read,
    ):
        after = pa.Table.from_batches(list(read))
    assert after.column("note").to_pylist() == ["new"] * len(TRICKY)
    assert after.column("due").to_pylist() == ["2024-03-04"] * len(TRICKY)
    assert after.column("_content_hash").equals(before.column("_content_hash"))


def test_window_is_half_open_and_each_bound_optional(addresses: DbSettings) -> None:
    both = _read(addresses, lower=T0.replace(minute=2), upper=T0.replace(minute=4))
    assert both.column("address_id").to_pylist() == [2, 3]
    below = _read(addresses, lower=None, upper=T0.replace(minute=3))
    assert below.column("address_id").to_pylist() == [1, 2]
    above = _read(addresses, lower=T0.replace(minute=5), upper=None)
    assert above.column("address_id").to_pylist() == [5, 6]


def test_a_bound_with_an_offset_is_refused(addresses: DbSettings) -> None:
    with pytest.raises(ValueError, match="naive UTC"):
        _read(addresses, lower=T0.replace(tzinfo=UTC), upper=None)


def test_rows_are_read_in_the_exported_snapshot(addresses: DbSettings) -> None:
    """A row committed after the export is not seen by the joined reader, nor is a delete."""
    with psycopg.connect(**addresses.conninfo()) as holder:
        reader.begin_snapshot(holder)
        snapshot = reader.export_snapshot(holder)
        with psycopg.connect(**addresses.conninfo(), autocommit=True) as writer:
            writer.execute("DELETE FROM address WHERE address_id = 1")
            writer.execute(
                "INSERT INTO address SELECT 99, address_line_1, address_line_2, district, city,"
                " postal_code, country, phone, created_at, last_updated FROM address"
                " WHERE address_id = 2"
            )
        with (
            SnapshotRows.open(addresses, snapshot=snapshot) as rows,
            rows.start(source_table("address"), [], None, None) as read,
        ):
            joined = pa.Table.from_batches(list(read))
    assert joined.column("address_id").to_pylist() == [1, 2, 3, 4, 5, 6]
    now = _read(addresses, lower=None, upper=None)
    assert now.column("address_id").to_pylist() == [2, 3, 4, 5, 6, 99]


def test_tables_begun_on_two_connections_read_ahead_in_one_snapshot(
    addresses: DbSettings,
) -> None:
    """The extract begins the next table on a second connection while it lands the one before:
    the query is sent at once, and both connections see the exported snapshot."""
    spec = source_table("address")
    with psycopg.connect(**addresses.conninfo()) as holder:
        reader.begin_snapshot(holder)
        snapshot = reader.export_snapshot(holder)
        with psycopg.connect(**addresses.conninfo(), autocommit=True) as writer:
            writer.execute("DELETE FROM address WHERE address_id = 1")
        with (
            SnapshotRows.open(addresses, snapshot=snapshot, application_name="rows-a") as a,
            SnapshotRows.open(addresses, snapshot=snapshot, application_name="rows-b") as b,
        ):
            first, second = a.start(spec, [], None, None), b.start(spec, [], None, None)
            with psycopg.connect(**addresses.conninfo(), autocommit=True) as watcher:
                sent = watcher.execute(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE application_name LIKE 'rows-_' AND query LIKE 'COPY%%'"
                    " ORDER BY 1"
                ).fetchall()
            assert sent == [("rows-a",), ("rows-b",)]  # before anything was asked for
            later = pa.Table.from_batches(list(second))
            earlier = pa.Table.from_batches(list(first))
            first.close()
            first.close()  # closing twice is harmless (after the last batch and on the way out)
            second.close()
            assert earlier.equals(later)
            assert earlier.column("address_id").to_pylist() == [1, 2, 3, 4, 5, 6]
            unread = a.start(spec, [], None, None)  # the connection is free again
            unread.close()  # never read: its thread ends and the connection is free once more
            with a.start(spec, [], None, None) as read:
                again = pa.Table.from_batches(list(read))
            assert again.num_rows == 6


def test_a_snapshot_that_is_gone_is_a_source_error(addresses: DbSettings) -> None:
    with psycopg.connect(**addresses.conninfo()) as holder:
        reader.begin_snapshot(holder)
        snapshot = reader.export_snapshot(holder)
    with pytest.raises(SourceError, match=r"preparing the source session failed: .*snapshot"):
        SnapshotRows.open(addresses, snapshot=snapshot)


def test_a_missing_table_is_a_source_error_naming_it(source_empty: DbSettings) -> None:
    with psycopg.connect(**source_empty.conninfo(), autocommit=True) as conn:
        conn.execute("DROP TABLE payment")
    with (
        SnapshotRows.open(source_empty, snapshot=None) as rows,
        pytest.raises(
            SourceError, match=r"table=payment\] reading the source table failed: "
        ) as raised,
    ):
        rows.start(source_table("payment"), [], None, None)
    assert 'relation "payment" does not exist' in str(raised.value)
    assert "Query was" not in str(raised.value)  # the driver's echo of the whole query


def test_a_value_beyond_the_landing_type_fails_the_read(addresses: DbSettings) -> None:
    with psycopg.connect(**addresses.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE address ALTER COLUMN created_at TYPE timestamp(6)")
        conn.execute("UPDATE address SET created_at = created_at + interval '1 microsecond'")
    with pytest.raises(SourceError, match=r"table=address\] a source value does not fit"):
        _read(addresses, lower=None, upper=None)


def _large(db: DbSettings) -> None:
    with psycopg.connect(**db.conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO address SELECT g, repeat('x', 200), NULL, NULL, 'c', 'p', 'k', 'ph',"
            " %s, %s FROM generate_series(1, 200000) g",
            (T0, T0),
        )


def test_a_statement_timeout_during_the_read_names_the_table(source_empty: DbSettings) -> None:
    # About 50 MB of rows taken slowly: the server is still sending when the timeout ends it.
    _large(source_empty)
    spec = source_table("address")
    with SnapshotRows.open(
        source_empty, snapshot=None, statement_timeout=timedelta(milliseconds=300)
    ) as rows:

        def take_slowly() -> None:
            with rows.start(spec, [], None, None) as read:
                for _ in read:
                    time.sleep(0.1)

        started = time.monotonic()
        with pytest.raises(SourceError, match=r"table=address\].*statement timeout"):
            take_slowly()
    assert time.monotonic() - started < 30


def test_closing_a_read_early_stops_it_and_frees_the_connection(source_empty: DbSettings) -> None:
    _large(source_empty)
    with SnapshotRows.open(source_empty, snapshot=None) as rows:
        read = rows.start(source_table("address"), [], None, None, batch_bytes=1 << 16)
        next(iter(read))
        threads = threading.active_count()
        started = time.monotonic()
        read.close()
        assert time.monotonic() - started < 5
        assert threading.active_count() == threads - 1  # the reading thread has ended
        with rows.start(source_table("address"), [], T0, T0 + timedelta(seconds=1)) as again:
            rows_again = pa.Table.from_batches(list(again))
    assert rows_again.num_rows == 200_000


def test_a_dropped_connection_during_the_read_names_the_table(source_empty: DbSettings) -> None:
    _large(source_empty)
    with SnapshotRows.open(source_empty, snapshot=None, application_name="rows-victim") as rows:
        read = rows.start(source_table("address"), [], None, None, batch_bytes=1 << 16)
        batches = iter(read)
        next(batches)
        with psycopg.connect(**source_empty.conninfo(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'rows-victim'"
            )
        with pytest.raises(SourceError, match=r"table=address\] reading the source table failed"):
            list(batches)
        read.close()
