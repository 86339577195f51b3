from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from totes.batches import dated_key, manifest_key, new_batch_id
from totes.errors import WarehouseError
from totes.lake import Lake, LocalLake, parquet_bytes, put_json
from totes.load import loader
from totes.load.loader import load_pending
from totes.settings import DbSettings


def _query(db: DbSettings, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**db.conninfo()) as conn:
        return conn.execute(statement.encode()).fetchall()


def test_first_batch_loads_every_table_with_exact_values(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    tables = {
        **helpers.dimension_rows(),
        "fact_sales_order": [helpers.sale(1)],
        "fact_purchase_order": [helpers.purchase(1)],
        "fact_payment": [helpers.payment(1)],
    }
    batch = processed_writer.commit(tables)

    summary = load_pending(warehouse, processed_writer.lake)

    assert summary["batches"] == [batch]
    assert summary["rows"]["dim_date"] == 10
    assert summary["rows"]["dim_staff"] == 2
    assert summary["fact_versions_added"] == {
        "fact_sales_order": 1,
        "fact_purchase_order": 1,
        "fact_payment": 1,
    }
    # NULL stays NULL and an empty string stays empty through the CSV staging
    assert _query(warehouse, "SELECT location_id, district FROM dim_location ORDER BY 1") == [
        (1, None),
        (2, ""),
    ]
    assert _query(warehouse, "SELECT counterparty_legal_name FROM dim_counterparty") == [
        ('Acme, "Ltd"',)
    ]
    row = _query(
        warehouse,
        "SELECT sales_record_id, created_time, unit_price, agreed_delivery_date, batch_id, "
        "sequence, is_deleted FROM fact_sales_order",
    )[0]
    assert row[0] == 1
    assert row[1] == time(9, 0, 10, 123000)
    assert str(row[2]) == "2.50"
    assert row[3] == helpers.day.replace(day=4)
    assert row[4:] == (batch, 1, False)
    assert _query(
        warehouse, "SELECT day_name, day_of_week FROM dim_date WHERE date_id = '2024-02-04'"
    ) == [("Sunday", 7)]
    assert _query(warehouse, "SELECT batch_id, sequence FROM warehouse_batch_ledger") == [
        (batch, 1)
    ]


def test_a_loaded_batch_is_never_loaded_again(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    load_pending(warehouse, processed_writer.lake)
    before = helpers.dump_warehouse(warehouse)

    again = load_pending(warehouse, processed_writer.lake)

    assert again["batches"] == []
    assert helpers.dump_warehouse(warehouse) == before


def test_a_full_local_disk_stops_the_load_naming_the_table_and_the_setting(
    warehouse: DbSettings,
    processed_writer: Any,
    helpers: Any,
    small_disk: Callable[[str, int], subprocess.CompletedProcess[str]],
) -> None:
    sales = [helpers.sale(n, units=n * 7919 % 100_003) for n in range(1, 20_001)]
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": sales})
    lake = str(processed_writer.lake.root)
    code = f"""
import sys
from pathlib import Path
from totes.errors import TotesError
from totes.lake import LocalLake
from totes.load.loader import load_pending
from totes.settings import DbSettings
try:
    load_pending(DbSettings(**{asdict(warehouse)!r}), LocalLake(Path({lake!r})))
except TotesError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
    done = small_disk(code, 20_000)  # the fact's object is larger, the dimensions' smaller
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("[load table=fact_sales_order key=fact_sales_order/")
    assert "the local disk is too small" in done.stderr
    assert "lambda_ephemeral_storage_mb" in done.stderr
    assert _query(warehouse, "SELECT count(*) FROM fact_sales_order") == [(0,)]


def test_a_batch_is_spooled_to_local_disk_and_the_spool_is_gone_after_it_loads_or_fails(
    warehouse: DbSettings,
    processed_writer: Any,
    helpers: Any,
    tmp_path: Path,
    spools: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm Lambda keeps its /tmp between invocations: spooled batches must not pile up."""
    seen: list[list[str]] = []
    apply = loader.apply_batch

    def spying_apply(conn: Any, batch: loader.StagedBatch) -> Any:
        seen.append(sorted(path.name for _, path in batch.files.values()))
        assert all(path.parent.parent == spools for _, path in batch.files.values())
        return apply(conn, batch)

    monkeypatch.setattr(loader, "apply_batch", spying_apply)
    failing = LocalLake(tmp_path / "failing")
    bad_id = {"currency_id": ["five"], "currency_code": ["FIV"], "currency_name": ["Five"]}
    _commit_one_file(failing, "dim_currency", pa.table(bad_id))
    with pytest.raises(WarehouseError, match="dim_currency"):
        load_pending(warehouse, failing)
    assert seen == [["dim_currency.parquet"]]
    assert list(spools.iterdir()) == []

    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    load_pending(warehouse, processed_writer.lake)
    assert "fact_sales_order.parquet" in seen[1]
    assert list(spools.iterdir()) == []


def test_history_same_version_twice_adds_nothing_and_a_change_adds_one_row(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit(
        {**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1), helpers.sale(2)]}
    )
    # an overlapping re-read delivers the same version of order 1 again
    processed_writer.commit({"fact_sales_order": [helpers.sale(1)]})
    # the brief's example: units_sold of order 2 updated, last_updated bumped
    processed_writer.commit({"fact_sales_order": [helpers.sale(2, units=7, minute=30)]})

    summary = load_pending(warehouse, processed_writer.lake)

    assert summary["fact_versions_added"]["fact_sales_order"] == 3
    assert len(summary["batches"]) == 3
    assert _query(
        warehouse, "SELECT sales_order_id, units_sold FROM fact_sales_order ORDER BY 1, 2"
    ) == [(1, 100), (2, 7), (2, 100)]
    assert _query(
        warehouse,
        "SELECT sales_order_id, units_sold FROM fact_sales_order_current ORDER BY 1",
    ) == [(1, 100), (2, 7)]


def test_silent_edit_is_a_new_version_and_current_follows_capture_order(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    # same last_updated, different design: only the content hash tells the versions apart
    processed_writer.commit({"fact_sales_order": [helpers.sale(1, design_id=2)]})

    load_pending(warehouse, processed_writer.lake)

    assert _query(
        warehouse, "SELECT sales_record_id, design_id FROM fact_sales_order ORDER BY 1"
    ) == [(1, 1), (2, 2)]
    assert _query(warehouse, "SELECT design_id FROM fact_sales_order_current") == [(2,)]


def test_a_row_edited_back_to_an_earlier_value_is_recorded_again(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    """A -> B -> A in place, each captured by a run: three versions, and current shows A."""
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    processed_writer.commit({"fact_sales_order": [helpers.sale(1, design_id=2)]})
    processed_writer.commit({"fact_sales_order": [helpers.sale(1)]})

    load_pending(warehouse, processed_writer.lake)

    assert _query(
        warehouse, "SELECT sales_record_id, design_id FROM fact_sales_order ORDER BY 1"
    ) == [(1, 1), (2, 2), (3, 1)]
    assert _query(warehouse, "SELECT design_id FROM fact_sales_order_current") == [(1,)]


def test_a_version_equal_to_the_latest_one_adds_nothing(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    processed_writer.commit({"fact_sales_order": [helpers.sale(1)]})  # e.g. a replayed row
    summary = load_pending(warehouse, processed_writer.lake)
    assert len(summary["batches"]) == 2
    assert summary["fact_versions_added"]["fact_sales_order"] == 1
    assert _query(warehouse, "SELECT count(*) FROM fact_sales_order") == [(1,)]


def test_record_ids_follow_capture_order_inside_a_batch(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    rows = [helpers.sale(3), helpers.sale(1), helpers.sale(2)]
    for position, row in enumerate(rows):
        row["capture_seq"] = [2, 0, 1][position]
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": rows})

    load_pending(warehouse, processed_writer.lake)

    assert _query(
        warehouse, "SELECT sales_record_id, sales_order_id FROM fact_sales_order ORDER BY 1"
    ) == [(1, 1), (2, 2), (3, 3)]


def test_payment_flip_keeps_two_versions_and_a_deletion_marker_hides_the_id(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit(
        {
            **helpers.dimension_rows(),
            "fact_payment": [helpers.payment(1), helpers.payment(2)],
        }
    )
    processed_writer.commit({"fact_payment": [helpers.payment(1, paid=True)]})
    marker = helpers.payment(2)
    marker["is_deleted"] = True
    processed_writer.commit({"fact_payment": [marker]})

    load_pending(warehouse, processed_writer.lake)

    assert _query(
        warehouse, "SELECT payment_id, paid, is_deleted FROM fact_payment ORDER BY 1, 2, 3"
    ) == [(1, False, False), (1, True, False), (2, False, False), (2, False, True)]
    assert _query(warehouse, "SELECT payment_id, paid FROM fact_payment_current") == [(1, True)]


def test_dimensions_take_the_latest_values_and_unchanged_rows_are_not_counted(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    dims = helpers.dimension_rows()
    processed_writer.commit(dims)
    staff = [dict(r) for r in dims["dim_staff"]]
    staff[1]["location"] = "Leeds"
    processed_writer.commit({"dim_staff": staff, "dim_date": dims["dim_date"][:2]})

    summary = load_pending(warehouse, processed_writer.lake)

    assert summary["rows"]["dim_staff"] == 3  # 2 inserted, then 1 changed
    assert summary["rows"]["dim_date"] == 10  # known dates are kept, not rewritten
    assert _query(warehouse, "SELECT staff_id, location FROM dim_staff ORDER BY 1") == [
        (1, "Leds"),
        (2, "Leeds"),
    ]


def test_a_failing_batch_rolls_back_whole_and_names_table_and_key(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    good = processed_writer.commit(
        {**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]}
    )
    processed_writer.commit(
        {
            "dim_design": [
                {"design_id": 9, "design_name": "x", "file_location": "/", "file_name": "f"}
            ],
            "fact_sales_order": [helpers.sale(2, design_id=77)],
        }
    )

    with pytest.raises(WarehouseError) as caught:
        load_pending(warehouse, processed_writer.lake)

    message = str(caught.value)
    assert "table=fact_sales_order" in message
    assert "key=design_id=77" in message
    assert "\n" not in message
    assert _query(warehouse, "SELECT batch_id FROM warehouse_batch_ledger") == [(good,)]
    assert _query(warehouse, "SELECT count(*) FROM dim_design WHERE design_id = 9") == [(0,)]
    assert _query(warehouse, "SELECT count(*) FROM fact_sales_order") == [(1,)]


FOREIGN_KEYS = (
    "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2"
)


def test_a_first_batch_is_checked_set_based_and_keeps_every_foreign_key(
    warehouse: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    declared = _query(warehouse, FOREIGN_KEYS)
    assert len([k for k in declared if k[0] == "fact_sales_order"]) == 9
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1)]})
    load_pending(warehouse, processed_writer.lake)
    assert _query(warehouse, FOREIGN_KEYS) == declared
    assert _query(warehouse, "SELECT count(*) FROM fact_sales_order") == [(1,)]


@pytest.mark.parametrize("reference", ["design_id", "agreed_delivery_date"])
def test_a_first_batch_referencing_a_missing_row_fails_whole_with_the_key_named(
    warehouse: DbSettings, processed_writer: Any, helpers: Any, reference: str
) -> None:
    declared = _query(warehouse, FOREIGN_KEYS)
    missing = {"design_id": 77, "agreed_delivery_date": "1999-01-01"}[reference]
    bad = helpers.sale(2, **{reference: 77 if reference == "design_id" else date(1999, 1, 1)})
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": [bad]})

    with pytest.raises(WarehouseError) as caught:
        load_pending(warehouse, processed_writer.lake)

    message = str(caught.value)
    assert "table=fact_sales_order" in message
    assert f"key={reference}={missing}" in message
    assert "reference check failed" in message
    assert _query(warehouse, "SELECT count(*) FROM warehouse_batch_ledger") == [(0,)]
    assert _query(warehouse, "SELECT count(*) FROM dim_staff") == [(0,)]
    assert _query(warehouse, FOREIGN_KEYS) == declared  # the rollback restored the keys


def test_crash_between_dimensions_and_facts_then_rerun_equals_a_clean_run(
    new_warehouse: Any, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit(
        {**helpers.dimension_rows(), "fact_sales_order": [helpers.sale(1), helpers.sale(2)]}
    )
    processed_writer.commit(
        {
            "dim_design": [
                {"design_id": 5, "design_name": "New", "file_location": "/", "file_name": "f"}
            ],
            "fact_sales_order": [helpers.sale(2, units=1, minute=9), helpers.sale(3)],
            "fact_payment": [helpers.payment(1)],
        }
    )
    clean = new_warehouse()
    load_pending(clean, processed_writer.lake)

    crashed = new_warehouse()
    with psycopg.connect(**crashed.conninfo(), autocommit=True) as conn:
        # fails the first fact insert of the second batch, after its dimensions were merged
        conn.execute(
            """
            CREATE TABLE crash_once (fired boolean);
            CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.sequence = 2 AND NOT EXISTS (SELECT 1 FROM crash_once) THEN
                    RAISE EXCEPTION 'injected crash';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER crash BEFORE INSERT ON fact_sales_order
                FOR EACH ROW EXECUTE FUNCTION crash();
            """
        )
    with pytest.raises(WarehouseError, match="injected crash"):
        load_pending(crashed, processed_writer.lake)
    assert _query(crashed, "SELECT count(*) FROM dim_design WHERE design_id = 5") == [(0,)]
    _query(crashed, "INSERT INTO crash_once VALUES (true) RETURNING fired")

    load_pending(crashed, processed_writer.lake)

    assert helpers.dump_warehouse(crashed) == helpers.dump_warehouse(clean)


def test_loading_needs_a_migrated_warehouse(
    empty_database: DbSettings, processed_writer: Any, helpers: Any
) -> None:
    processed_writer.commit(helpers.dimension_rows())
    with pytest.raises(WarehouseError, match="not migrated"):
        load_pending(empty_database, processed_writer.lake)


def test_a_warehouse_loaded_from_another_history_is_refused(
    warehouse: DbSettings, processed_writer: Any, helpers: Any, tmp_path: Path
) -> None:
    processed_writer.commit(helpers.dimension_rows())
    load_pending(warehouse, processed_writer.lake)
    # Another processed lake whose sequence 1 is a different batch, followed by a sequence 2:
    # loading its sequence 2 on top would mix two histories.
    other = LocalLake(tmp_path / "other")
    for sequence in (1, 2):
        batch = new_batch_id(processed_writer.clock.replace(year=2027 + sequence))
        put_json(
            other,
            manifest_key(sequence),
            {"format": 1, "kind": "processed", "batch_id": batch, "sequence": sequence},
        )
    with pytest.raises(WarehouseError, match="loaded from another history"):
        load_pending(warehouse, other)


def _commit_one_file(lake: Lake, table: str, data: pa.Table) -> str:
    """A processed batch of one hand-written file, as sequence 1; its key."""
    batch = new_batch_id(datetime.now(UTC))
    key = dated_key(table, batch)
    lake.put(key, parquet_bytes(data))
    put_json(
        lake,
        manifest_key(1),
        {
            "format": 1,
            "kind": "processed",
            "batch_id": batch,
            "sequence": 1,
            "tables": {table: {"key": key, "rows": data.num_rows}},
        },
    )
    return key


def test_a_processed_file_missing_a_column_is_a_warehouse_error(
    warehouse: DbSettings, local_lake: Lake, helpers: Any
) -> None:
    _commit_one_file(local_lake, "dim_currency", pa.table({"currency_id": [1]}))
    with pytest.raises(WarehouseError, match="lacks column"):
        load_pending(warehouse, local_lake)


def test_a_table_longer_than_one_encoded_slice_loads_every_row_in_capture_order(
    warehouse: DbSettings, processed_writer: Any, helpers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "ENCODE_ROWS", 2)  # five sales in three slices
    sales = [helpers.sale(n) for n in (5, 3, 1, 4, 2)]
    processed_writer.commit({**helpers.dimension_rows(), "fact_sales_order": sales})

    summary = load_pending(warehouse, processed_writer.lake)

    assert summary["fact_versions_added"]["fact_sales_order"] == 5
    assert summary["rows"]["dim_date"] == 10
    assert _query(
        warehouse, "SELECT sales_record_id, sales_order_id FROM fact_sales_order ORDER BY 1"
    ) == [(1, 5), (2, 3), (3, 1), (4, 4), (5, 2)]


def test_a_value_outside_the_contract_in_a_later_slice_fails_the_whole_batch(
    warehouse: DbSettings, local_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows are cast slice by slice inside the batch's transaction: a bad value in the
    third slice still leaves nothing of the batch behind."""
    monkeypatch.setattr(loader, "ENCODE_ROWS", 2)
    ids = ["1", "2", "3", "4", "five"]  # text ids cast to the contract's integer, but one
    bad = pa.table(
        {
            "currency_id": ids,
            "currency_code": [f"C{i}" for i in range(5)],
            "currency_name": [f"Currency {i}" for i in range(5)],
        }
    )
    key = _commit_one_file(local_lake, "dim_currency", bad)
    with pytest.raises(WarehouseError, match="does not match the contract") as caught:
        load_pending(warehouse, local_lake)
    assert "table=dim_currency" in str(caught.value)
    assert key in str(caught.value)
    assert _query(warehouse, "SELECT count(*) FROM dim_currency") == [(0,)]
    assert _query(warehouse, "SELECT count(*) FROM warehouse_batch_ledger") == [(0,)]
