"""Loading the real snapshots into the strict schema, and bringing Feb 2024 up to Nov 2024."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from totes.cli import main
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.devstack.postgres import recreate_database
from totes_dev.errors import SnapshotLoadError
from totes_dev.source.schema import fingerprints, row_counts
from totes_dev.source.snapshots import load_snapshot, snapshot_path

# Counted from the files (the snapshots' README).
FEB_ROWS = {
    "address": 30, "counterparty": 20, "currency": 3, "department": 8, "design": 324,
    "staff": 20, "payment_type": 4, "sales_order": 6941, "purchase_order": 2958,
    "transaction": 9899, "payment": 9899,
}  # fmt: skip
NOV_ROWS = {
    **FEB_ROWS, "design": 473, "sales_order": 11187, "purchase_order": 4649,
    "transaction": 15836, "payment": 15836,
}  # fmt: skip


def _counts(db: DbSettings) -> dict[str, int]:
    with psycopg.connect(**db.conninfo()) as conn:
        return row_counts(conn)


def _fingerprints(db: DbSettings) -> dict[str, str]:
    with psycopg.connect(**db.conninfo()) as conn:
        return fingerprints(conn)


def _versions(db: DbSettings, table: str) -> dict[int, tuple[str, object]]:
    t = source_table(table)
    with psycopg.connect(**db.conninfo()) as conn:
        rows = conn.execute(
            f"SELECT {t.primary_key}, md5(x::text), last_updated FROM {t.quoted} x"
        ).fetchall()
    return {pk: (digest, updated) for pk, digest, updated in rows}


def test_feb_snapshot_reproduces_its_row_counts(source_feb: DbSettings) -> None:
    assert _counts(source_feb) == FEB_ROWS


def test_nov_snapshot_reproduces_its_row_counts(source_nov: DbSettings) -> None:
    assert _counts(source_nov) == NOV_ROWS


def test_loaded_database_keeps_every_constraint_and_fresh_sequences(source_nov: DbSettings) -> None:
    with psycopg.connect(**source_nov.conninfo()) as conn:
        kinds = dict(
            conn.execute(
                "SELECT contype, count(*) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace GROUP BY contype"
            ).fetchall()
        )
        assert kinds == {"p": 11, "f": 17, "u": 3}
        # the serial sequences continue after the largest loaded id
        new_id = conn.execute(
            "INSERT INTO design (design_name, file_location, file_name, last_updated) "
            "VALUES ('Steel', '/tmp', 'steel.json', now()) RETURNING design_id"
        ).fetchone()
        assert new_id == (474,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("UPDATE sales_order SET design_id = 9999 WHERE sales_order_id = 1")


def test_values_are_converted_exactly(source_feb: DbSettings, source_nov: DbSettings) -> None:
    query = (
        "SELECT a.address_line_2, a.district, s.unit_price::text, s.created_at::text, "
        "t.sales_order_id, t.purchase_order_id "
        'FROM address a, sales_order s, "transaction" t '
        "WHERE a.address_id = 2 AND s.sales_order_id = 1 AND t.transaction_id = 3"
    )
    for db in (source_feb, source_nov):
        with psycopg.connect(**db.conninfo()) as conn:
            # 'NULL' strings (dump) and real nulls (Parquet) both become NULL; '1.0' becomes 1
            assert conn.execute(query).fetchone() == (
                None, None, "2.43", "2022-11-03 14:20:52.186", 1, None,
            )  # fmt: skip
            nulls = conn.execute(
                "SELECT count(*) FILTER (WHERE address_line_2 IS NULL), "
                "count(*) FILTER (WHERE district IS NULL) FROM address"
            ).fetchone()
            assert nulls == (20, 14)


def test_feb_brought_up_to_nov_equals_nov(
    source_feb: DbSettings, source_nov: DbSettings, snapshots: Path
) -> None:
    before = {name: _versions(source_feb, name) for name in LOAD_ORDER}

    counts = load_snapshot(source_feb, snapshot_path(snapshots, "2024-11-15"))

    assert counts == NOV_ROWS
    assert _fingerprints(source_feb) == _fingerprints(source_nov)
    silent, visible = {}, {}
    for name in LOAD_ORDER:
        after = _versions(source_feb, name)
        changed = [pk for pk, old in before[name].items() if after[pk][0] != old[0]]
        silent[name] = sum(after[pk][1] == before[name][pk][1] for pk in changed)
        visible[name] = sum(after[pk][1] != before[name][pk][1] for pk in changed)
    # the README's diff of the two snapshots
    assert silent == {**dict.fromkeys(LOAD_ORDER, 0), "sales_order": 69, "purchase_order": 60,
                      "design": 57}  # fmt: skip
    assert visible == {**dict.fromkeys(LOAD_ORDER, 0), "payment": 30}


def test_loading_the_same_snapshot_twice_changes_nothing(
    source_nov: DbSettings, snapshots: Path
) -> None:
    before = _fingerprints(source_nov)
    assert load_snapshot(source_nov, snapshot_path(snapshots, "2024-11-15")) == NOV_ROWS
    assert _fingerprints(source_nov) == before


def _broken_parquet_copy(snapshots: Path, tmp_path: Path, table: str, column: str, index: int,
                         value: object, kind: pa.DataType) -> Path:  # fmt: skip
    folder = tmp_path / "snapshot-broken"
    shutil.copytree(snapshot_path(snapshots, "2024-11-15"), folder)
    path = folder / f"{table}.parquet"
    rows = pq.read_table(path)
    values = rows.column(column).to_pylist()
    values[index] = value
    position = rows.column_names.index(column)
    pq.write_table(rows.set_column(position, column, pa.array(values, kind)), path)
    return folder


def test_unconvertible_parquet_value_names_file_table_row_column_and_loads_nothing(
    source_empty: DbSettings, snapshots: Path, tmp_path: Path
) -> None:
    folder = _broken_parquet_copy(
        snapshots, tmp_path, "transaction", "sales_order_id", 41, 7.5, pa.float64()
    )
    key = pq.read_table(folder / "transaction.parquet").column("transaction_id")[41].as_py()

    with pytest.raises(SnapshotLoadError) as caught:
        load_snapshot(source_empty, folder)

    message = str(caught.value)
    assert f"table=transaction key={key}" in message
    assert "transaction.parquet: row 42, column sales_order_id: 7.5" in message
    assert _counts(source_empty) == dict.fromkeys(LOAD_ORDER, 0)


def test_missing_money_stops_the_load(
    source_empty: DbSettings, snapshots: Path, tmp_path: Path
) -> None:
    folder = _broken_parquet_copy(
        snapshots, tmp_path, "payment", "payment_amount", 0, float("nan"), pa.float64()
    )
    with pytest.raises(SnapshotLoadError, match=r"payment.parquet: row 1, column payment_amount"):
        load_snapshot(source_empty, folder)
    assert _counts(source_empty) == dict.fromkeys(LOAD_ORDER, 0)


def test_constraint_violation_names_the_row_and_leaves_the_old_state(
    source_feb: DbSettings, snapshots: Path, tmp_path: Path
) -> None:
    folder = _broken_parquet_copy(
        snapshots, tmp_path, "sales_order", "design_id", 9000, 99999, pa.int64()
    )
    before = _fingerprints(source_feb)

    with pytest.raises(SnapshotLoadError) as caught:
        load_snapshot(source_feb, folder)

    assert "sales_order.parquet: row 9001, column design_id" in str(caught.value)
    assert "table=sales_order" in str(caught.value)
    assert _fingerprints(source_feb) == before  # designs were upserted, then rolled back


def test_malformed_dump_row_names_line_and_column(
    source_empty: DbSettings, snapshots: Path, tmp_path: Path
) -> None:
    original = snapshot_path(snapshots, "2024-02-23") / "totesys.sql.gz"
    lines = gzip.decompress(original.read_bytes()).split(b"\n")
    header = next(i for i, line in enumerate(lines) if line.startswith(b"COPY public.sales_order"))
    fields = lines[header + 3].split(b"\t")
    fields[6] = b"many"  # units_sold
    lines[header + 3] = b"\t".join(fields)
    broken = tmp_path / "totesys.sql.gz"
    broken.write_bytes(gzip.compress(b"\n".join(lines)))

    with pytest.raises(SnapshotLoadError) as caught:
        load_snapshot(source_empty, broken)

    assert (
        f"[source-load table=sales_order key={int(fields[0])}] totesys.sql.gz: "
        f"row 3 (line {header + 4}), column units_sold: 'many' is not a whole number"
    ) == str(caught.value)
    assert _counts(source_empty) == dict.fromkeys(LOAD_ORDER, 0)


def test_repeated_primary_key_is_refused(
    source_empty: DbSettings, snapshots: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "snapshot-dup"
    shutil.copytree(snapshot_path(snapshots, "2024-11-15"), folder)
    designs = pq.read_table(folder / "design.parquet")
    pq.write_table(pa.concat_tables([designs, designs.slice(5, 1)]), folder / "design.parquet")
    key = designs.column("design_id")[5].as_py()

    with pytest.raises(SnapshotLoadError, match=rf"row 474, column design_id: primary key {key}"):
        load_snapshot(source_empty, folder)


def test_snapshot_path_accepts_short_and_full_names(snapshots: Path) -> None:
    assert snapshot_path(snapshots, "2024-11-15") == snapshots / "snapshot-2024-11-15"
    assert snapshot_path(snapshots, "snapshot-2024-02-23") == snapshots / "snapshot-2024-02-23"
    with pytest.raises(SnapshotLoadError, match="no snapshot snapshot-1999-01-01"):
        snapshot_path(snapshots, "1999-01-01")


def test_cli_load_creates_the_schema_and_prints_counts(
    pg_admin: DbSettings,
    snapshots: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = recreate_database(pg_admin, f"totes_source_cli_{os.getpid()}")  # no schema yet
    for name, value in (("PG_HOST", db.host), ("PG_PORT", str(db.port)), ("PG_USER", db.user),
                        ("PG_PASSWORD", db.password), ("PG_DATABASE", db.database)):  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOTES_SOURCE_SECRET_ID", raising=False)

    assert main(["source", "load", "--snapshot", str(snapshots / "snapshot-2024-02-23")]) == 0

    assert json.loads(capsys.readouterr().out) == FEB_ROWS
    assert _counts(db) == FEB_ROWS
