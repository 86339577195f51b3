from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from totes.batches import dated_key, manifest_key
from totes.commits import newest
from totes.contracts.ingestion import land_rows, source_schema
from totes.contracts.processed import FACT_METADATA_SCHEMA as FACT_METADATA
from totes.errors import LakeError, TransformError
from totes.lake import Lake, LocalLake, Payload, S3Lake, get_json, parquet_bytes, read_parquet
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER
from totes.transform.rules import WAREHOUSE_TABLES, warehouse_schema
from totes.transform.transformer import transform_pending
from totes_dev.landing import with_landing_columns

Land = Callable[..., str]

FACT_IDS = {
    "fact_sales_order": ("sales_order", "sales_order_id"),
    "fact_purchase_order": ("purchase_order", "purchase_order_id"),
    "fact_payment": ("payment", "payment_id"),
}
FACT_IDS_SOURCES = tuple(table for table, _ in FACT_IDS.values())
# (fact, column) -> (dimension, key) for every reference a fact makes.
FACT_REFERENCES = {
    ("fact_sales_order", "sales_staff_id"): ("dim_staff", "staff_id"),
    ("fact_sales_order", "counterparty_id"): ("dim_counterparty", "counterparty_id"),
    ("fact_sales_order", "currency_id"): ("dim_currency", "currency_id"),
    ("fact_sales_order", "design_id"): ("dim_design", "design_id"),
    ("fact_sales_order", "agreed_delivery_location_id"): ("dim_location", "location_id"),
    ("fact_purchase_order", "staff_id"): ("dim_staff", "staff_id"),
    ("fact_purchase_order", "counterparty_id"): ("dim_counterparty", "counterparty_id"),
    ("fact_purchase_order", "currency_id"): ("dim_currency", "currency_id"),
    ("fact_purchase_order", "agreed_delivery_location_id"): ("dim_location", "location_id"),
    ("fact_payment", "transaction_id"): ("dim_transaction", "transaction_id"),
    ("fact_payment", "counterparty_id"): ("dim_counterparty", "counterparty_id"),
    ("fact_payment", "currency_id"): ("dim_currency", "currency_id"),
    ("fact_payment", "payment_type_id"): ("dim_payment_type", "payment_type_id"),
}


@pytest.fixture
def processed(s3_bucket: str) -> S3Lake:
    return S3Lake(s3_bucket, "processed")


def latest_document(lake: Lake) -> dict[str, Any]:
    latest = newest(lake)
    assert latest is not None
    return latest.document


def outputs(lake: Lake, manifest: dict[str, Any] | None = None) -> dict[str, pa.Table]:
    """The warehouse tables of one processed batch (the latest when not given)."""
    if manifest is None:
        latest = newest(lake)
        assert latest is not None
        manifest = latest.document
    return {
        name: read_parquet(lake, entry["key"])
        if entry["key"]
        else warehouse_schema(name).empty_table()
        for name, entry in manifest["tables"].items()
    }


def assert_snapshot_model(out: dict[str, pa.Table], source: dict[str, pa.Table]) -> None:
    for fact, (table, key) in FACT_IDS.items():
        ids = out[fact].column(key)
        assert len(ids) == source[table].num_rows
        assert pc.count_distinct(ids).as_py() == len(ids)
        assert out[fact].schema == pa.schema([*warehouse_schema(fact), *FACT_METADATA])
    for dim, table in (
        ("dim_location", "address"),
        ("dim_counterparty", "counterparty"),
        ("dim_staff", "staff"),
        ("dim_design", "design"),
        ("dim_currency", "currency"),
        ("dim_payment_type", "payment_type"),
        ("dim_transaction", "transaction"),
    ):
        assert out[dim].num_rows == source[table].num_rows, dim
        assert pc.count_distinct(out[dim].column(0)).as_py() == out[dim].num_rows
    for (fact, column), (dim, key) in FACT_REFERENCES.items():
        assert pc.all(pc.is_in(out[fact].column(column), out[dim].column(key))).as_py(), column
    for fact in FACT_IDS:
        for field in warehouse_schema(fact):
            if field.type == pa.date32():
                dates = out[fact].column(field.name)
                assert pc.all(pc.is_in(dates, out["dim_date"].column("date_id"))).as_py()
    location = out["dim_location"]
    assert location.column("address_line_2").null_count == 20
    assert location.column("district").null_count == 14
    for table, columns in (
        ("dim_location", ("address_line_2", "district")),
        (
            "dim_counterparty",
            ("counterparty_legal_address_line_2", "counterparty_legal_district"),
        ),
    ):
        for column in columns:
            values = set(out[table].column(column).to_pylist())
            assert not values & {"None", "NULL", ""}
    # Real NULLs in dim_counterparty: exactly those of the addresses the counterparties use.
    address_nulls = dict(
        zip(
            source["address"].column("address_id").to_pylist(),
            source["address"].column("address_line_2").to_pylist(),
            strict=True,
        )
    )
    expected_nulls = sum(
        address_nulls[a] is None
        for a in source["counterparty"].column("legal_address_id").to_pylist()
    )
    assert out["dim_counterparty"].column("counterparty_legal_address_line_2").null_count == (
        expected_nulls
    )
    assert expected_nulls > 0
    # Milliseconds survive: the split parts give back every source timestamp exactly.
    sales = out["fact_sales_order"].sort_by("sales_order_id")
    source_sales = source["sales_order"].sort_by("sales_order_id")
    rebuilt = [
        datetime.combine(d, t)
        for d, t in zip(
            sales.column("created_date").to_pylist(),
            sales.column("created_time").to_pylist(),
            strict=True,
        )
    ]
    assert rebuilt == source_sales.column("created_at").to_pylist()
    assert any(t.microsecond for t in sales.column("created_time").to_pylist())


def test_snapshot_landed_by_helper_becomes_the_whole_warehouse(
    s3_lake: S3Lake, processed: S3Lake, nov_source: dict[str, pa.Table], land: Land
) -> None:
    land(s3_lake, nov_source)
    summary = transform_pending(s3_lake, processed)
    assert len(summary["batches"]) == 1
    assert summary["quarantined"] == dict.fromkeys(LOAD_ORDER, 0)
    assert summary["rows"]["fact_sales_order"] == 11_187
    assert_snapshot_model(outputs(processed), nov_source)


def test_snapshot_landed_by_the_extract_becomes_the_whole_warehouse(
    source_nov: DbSettings, tmp_path: Path, nov_source: dict[str, pa.Table]
) -> None:
    from totes.extract.extractor import run_extract

    ingestion, processed = LocalLake(tmp_path / "in"), LocalLake(tmp_path / "out")
    run_extract(
        source_nov,
        ingestion,
        run_id="test",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=True,
        settings=ExtractSettings(),
    )
    summary = transform_pending(ingestion, processed)
    assert summary["quarantined"] == dict.fromkeys(LOAD_ORDER, 0)
    out = outputs(processed)
    assert_snapshot_model(out, nov_source)
    assert pc.all(pc.invert(out["fact_payment"].column("is_deleted"))).as_py()


def test_second_run_transforms_nothing_and_writes_nothing(
    s3_lake: S3Lake, processed: S3Lake, nov_source: dict[str, pa.Table], land: Land
) -> None:
    land(s3_lake, {"currency": nov_source["currency"]})
    first = transform_pending(s3_lake, processed)
    objects = sorted(processed.list(""))
    second = transform_pending(s3_lake, processed)
    assert first["batches"]
    assert first["rows"]["dim_currency"] == 3
    assert second["batches"] == []
    assert sum(second["rows"].values()) == 0
    assert sorted(processed.list("")) == objects


class ReadRecordingLake(LocalLake):
    """A directory lake that notes every object read from it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def get(self, key: str) -> bytes:
        self.read.append(key)
        return super().get(key)

    def get_into(self, key: str, sink: BinaryIO) -> None:
        self.read.append(key)
        super().get_into(key, sink)


def test_a_run_with_nothing_pending_reads_no_state(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    """The run every 20 minutes usually finds nothing: it must not pay for reading the state."""
    processed = ReadRecordingLake(tmp_path / "processed")
    transform_first_batch(local_lake, processed, nov_source, land)
    land(local_lake, {"transaction": nov_source["transaction"].sort_by("transaction_id")[5:9]})
    transform_pending(local_lake, processed)
    assert any(key.startswith("_state/transaction/") for key in processed.read)  # the merge
    processed.read.clear()
    assert transform_pending(local_lake, processed)["batches"] == []
    assert [key for key in processed.read if key.startswith("_state/")] == []


def small_source(nov: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Every dimension source and the five seed orders of each kind: a quick, complete batch."""
    first = {name: nov[name] for name in LOAD_ORDER}
    for name in ("sales_order", "purchase_order", "payment", "transaction"):
        first[name] = nov[name].sort_by(f"{name}_id").slice(0, 5)
    return first


def transform_first_batch(
    ingestion: Lake, processed: Lake, nov: dict[str, pa.Table], land: Land
) -> None:
    """Land :func:`small_source` as the first batch and transform it."""
    land(ingestion, small_source(nov))
    transform_pending(ingestion, processed)


def test_department_change_alone_rebuilds_every_staff_member_of_it(
    s3_lake: S3Lake, processed: S3Lake, nov_source: dict[str, pa.Table], land: Land
) -> None:
    land(s3_lake, small_source(nov_source))
    transform_pending(s3_lake, processed)
    department = nov_source["department"].filter(
        pc.equal(nov_source["department"]["department_id"], 2)
    )
    moved = department.set_column(
        department.schema.get_field_index("location"), "location", pa.array(["York"])
    )
    land(s3_lake, {"department": moved})
    summary = transform_pending(s3_lake, processed)
    staff = outputs(processed)["dim_staff"]
    members = nov_source["staff"].filter(pc.equal(nov_source["staff"]["department_id"], 2))
    assert members.num_rows > 1
    assert sorted(staff.column("staff_id").to_pylist()) == sorted(
        members.column("staff_id").to_pylist()
    )
    assert set(staff.column("location").to_pylist()) == {"York"}
    assert summary["rows"]["dim_counterparty"] == 0
    assert summary["rows"]["fact_sales_order"] == 0


def test_address_change_alone_rebuilds_every_counterparty_using_it(
    s3_lake: S3Lake, processed: S3Lake, nov_source: dict[str, pa.Table], land: Land
) -> None:
    land(s3_lake, small_source(nov_source))
    transform_pending(s3_lake, processed)
    address = nov_source["address"].filter(pc.equal(nov_source["address"]["address_id"], 17))
    moved = address.set_column(
        address.schema.get_field_index("city"), "city", pa.array(["Grimsby"])
    )
    land(s3_lake, {"address": moved})
    transform_pending(s3_lake, processed)
    out = outputs(processed)
    users = nov_source["counterparty"].filter(
        pc.equal(nov_source["counterparty"]["legal_address_id"], 17)
    )
    assert users.num_rows == 4
    assert sorted(out["dim_counterparty"].column("counterparty_id").to_pylist()) == sorted(
        users.column("counterparty_id").to_pylist()
    )
    assert set(out["dim_counterparty"].column("counterparty_legal_city").to_pylist()) == {"Grimsby"}
    assert out["dim_location"].column("location_id").to_pylist() == [17]
    assert out["dim_staff"].num_rows == 0


def _edited(table: pa.Table, column: str, values: list[Any]) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def test_bad_rows_are_quarantined_reported_and_logged_while_the_rest_goes_through(
    s3_lake: S3Lake,
    processed: S3Lake,
    nov_source: dict[str, pa.Table],
    land: Land,
    capsys: pytest.CaptureFixture[str],
) -> None:
    land(s3_lake, small_source(nov_source))
    transform_pending(s3_lake, processed)
    capsys.readouterr()
    sales = nov_source["sales_order"].sort_by("sales_order_id").slice(10, 3)
    sales = _edited(sales, "agreed_delivery_date", ["2024-02-30", "2024-11-20", "2024-11-21"])
    sales = _edited(sales, "design_id", [1, 99_999, 1])
    currency = nov_source["currency"].slice(0, 1)
    currency = _edited(currency, "currency_code", ["XYZ"])
    land(s3_lake, {"sales_order": sales, "currency": currency})
    summary = transform_pending(s3_lake, processed)

    assert summary["quarantined"]["sales_order"] == 2
    assert summary["quarantined"]["currency"] == 1
    assert summary["rows"]["fact_sales_order"] == 1
    good_id = sales.column("sales_order_id")[2].as_py()
    assert outputs(processed)["fact_sales_order"].column("sales_order_id").to_pylist() == [good_id]
    assert summary["rows"]["dim_currency"] == 0

    manifest = latest_document(processed)
    records = pa.concat_tables(read_parquet(processed, k) for k in manifest["quarantine_keys"])
    by_key = {(r["table"], r["key"]): r for r in records.to_pylist()}
    bad_date = by_key[("sales_order", sales.column("sales_order_id")[0].as_py())]
    assert "agreed_delivery_date is not a YYYY-MM-DD date" in bad_date["reason"]
    assert json.loads(bad_date["row_json"])["agreed_delivery_date"] == "2024-02-30"
    assert json.loads(bad_date["row_json"])["unit_price"] == str(
        sales.column("unit_price")[0].as_py()
    )
    bad_design = by_key[("sales_order", sales.column("sales_order_id")[1].as_py())]
    assert "design_id refers to a design" in bad_design["reason"]
    assert "currency_code is not one of EUR, GBP, USD" in by_key[("currency", 1)]["reason"]

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    alerts = [line for line in lines if line["level"] == "ERROR"]
    assert alerts
    assert alerts[0]["quarantined"] == {"currency": 1, "sales_order": 2}


def test_tombstone_becomes_a_deleted_version_with_its_last_values(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    land(local_lake, small_source(nov_source))
    transform_pending(local_lake, processed)
    gone = nov_source["sales_order"].sort_by("sales_order_id").slice(0, 1)
    land(local_lake, {}, deletes={"sales_order": gone})
    transform_pending(local_lake, processed)
    fact = outputs(processed)["fact_sales_order"]
    assert fact.column("is_deleted").to_pylist() == [True]
    assert fact.column("unit_price").to_pylist() == gone.column("unit_price").to_pylist()
    assert isinstance(fact.column("unit_price")[0].as_py(), Decimal)


def test_batches_are_transformed_in_order_with_their_ids_and_sequences(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    keys = [land(local_lake, small_source(nov_source))]
    later = nov_source["sales_order"].sort_by("sales_order_id").slice(5, 4)
    keys.append(land(local_lake, {"sales_order": later}))
    summary = transform_pending(local_lake, processed)
    manifests = [get_json(local_lake, k) for k in keys]
    assert summary["batches"] == [m["batch_id"] for m in manifests]
    fact = read_parquet(
        processed, get_json(processed, keys[1])["tables"]["fact_sales_order"]["key"]
    )
    assert fact.column("batch_id").to_pylist() == [manifests[1]["batch_id"]] * 4
    assert fact.column("sequence").to_pylist() == [2] * 4
    assert fact.column("capture_seq").to_pylist() == [0, 1, 2, 3]
    assert (
        fact.column("content_hash").to_pylist()
        == read_parquet(local_lake, manifests[1]["tables"]["sales_order"]["key"])
        .column("_content_hash")
        .to_pylist()
    )


class CrashingLake(LocalLake):
    """A directory lake whose storage fails once on the first manifest write (a crash)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.crashes = 1

    def put(self, key: str, data: Payload) -> None:
        if key.startswith("_manifests/") and self.crashes:
            self.crashes -= 1
            raise LakeError("simulated crash before the manifest")
        super().put(key, data)


def test_crash_before_the_manifest_is_recovered_by_the_next_run(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = CrashingLake(tmp_path / "processed")
    key = land(local_lake, small_source(nov_source))
    batch_id = get_json(local_lake, key)["batch_id"]
    # A leftover from an attempt by other code: same key, other bytes.
    processed.put(dated_key("dim_currency", batch_id), b"not what this run writes")
    with pytest.raises(LakeError, match="simulated crash"):
        transform_pending(local_lake, processed)
    assert newest(processed) is None
    summary = transform_pending(local_lake, processed)
    assert summary["batches"] == [batch_id]
    manifest = latest_document(processed)
    assert manifest["tables"]["dim_currency"]["key"].endswith(".retry1.parquet")
    assert read_parquet(processed, manifest["tables"]["dim_currency"]["key"]).num_rows == 3
    assert manifest["tables"]["dim_staff"]["key"] == dated_key("dim_staff", batch_id)
    assert outputs(processed, manifest)["fact_payment"].num_rows == 5


def test_a_missing_batch_stops_the_run_with_a_reason(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table]
) -> None:
    processed = LocalLake(tmp_path / "processed")
    rows = {"currency": with_landing_columns("currency", nov_source["currency"])}
    land_rows(local_lake, rows, run_id="t", extra={"sequence": 2})
    with pytest.raises(LakeError, match="no batch of sequence 1"):
        transform_pending(local_lake, processed)


def test_state_objects_are_new_and_only_for_changed_tables(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    first = get_json(local_lake, land(local_lake, small_source(nov_source)))
    designs = nov_source["design"].sort_by("design_id").slice(0, 2)
    moved_at = datetime(2025, 1, 2, 3, 4, 5)
    designs = _edited(designs, "file_location", ["/moved", "/moved"])
    designs = _edited(designs, "last_updated", [moved_at, moved_at])
    second = get_json(local_lake, land(local_lake, {"design": designs}))
    transform_pending(local_lake, processed)
    one = get_json(processed, manifest_key(first["sequence"]))["state"]
    two = get_json(processed, manifest_key(second["sequence"]))["state"]
    assert two["design"] == f"_state/design/{second['batch_id']}.parquet"
    assert one["design"] != two["design"]
    assert {t: k for t, k in two.items() if t != "design"} == {
        t: k for t, k in one.items() if t != "design"
    }
    # A one-table dimension's source keeps its keys and last_updated as state, not whole rows.
    state = read_parquet(processed, two["design"])
    assert state.column_names == ["design_id", "last_updated"]
    assert state.num_rows == nov_source["design"].num_rows
    moved = state.filter(pc.equal(state["last_updated"], pa.scalar(moved_at, pa.timestamp("us"))))
    assert moved.column("design_id").to_pylist() == [1, 2]
    dimension = outputs(processed)["dim_design"]
    assert dimension.column("file_location").to_pylist() == ["/moved", "/moved"]


def test_every_manifest_lists_all_warehouse_tables(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    land(local_lake, {"currency": nov_source["currency"]})
    transform_pending(local_lake, processed)
    manifest = latest_document(processed)
    assert sorted(manifest["tables"]) == sorted(WAREHOUSE_TABLES)
    assert manifest["tables"]["fact_payment"] == {"key": None, "rows": 0}
    assert manifest["kind"] == "processed"
    assert manifest["sequence"] == 1


def test_facts_and_transactions_in_slices_give_the_same_batch_as_one_slice(
    s3_lake: S3Lake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    # Bad rows far into the tables, so that they fall in late slices.
    sales = nov_source["sales_order"].sort_by("sales_order_id")
    ids = sales.column("design_id").to_pylist()
    ids[9_000] = ids[10_500] = 99_999
    transactions = nov_source["transaction"].sort_by("transaction_id")
    kinds = transactions.column("transaction_type").to_pylist()
    kinds[12_345] = None
    land(
        s3_lake,
        {
            **nov_source,
            "sales_order": _edited(sales, "design_id", ids),
            "transaction": _edited(transactions, "transaction_type", kinds),
        },
    )
    whole, sliced = LocalLake(tmp_path / "whole"), LocalLake(tmp_path / "sliced")
    one = transform_pending(s3_lake, whole, slice_rows=1 << 30)
    many = transform_pending(s3_lake, sliced, slice_rows=1_000)
    assert one["quarantined"]["sales_order"] == many["quarantined"]["sales_order"] == 2
    assert one["quarantined"]["transaction"] == many["quarantined"]["transaction"] == 1
    assert one["rows"] == many["rows"]
    assert many["rows"]["dim_transaction"] == transactions.num_rows - 1
    state = [
        read_parquet(lake, latest_document(lake)["state"]["transaction"])
        for lake in (whole, sliced)
    ]
    assert state[0].equals(state[1])
    assert state[1].num_rows == transactions.num_rows - 1
    expected, actual = outputs(whole), outputs(sliced)
    for name in WAREHOUSE_TABLES:  # capture positions included: offsets carry across slices
        assert actual[name].equals(expected[name]), name
    quarantined = [
        sorted(
            (
                record
                for key in latest_document(lake)["quarantine_keys"]
                for record in read_parquet(lake, key).to_pylist()
            ),
            key=lambda r: (r["table"], r["key"]),
        )
        for lake in (whole, sliced)
    ]
    assert quarantined[0] == quarantined[1]
    assert {r["table"] for r in quarantined[1]} == {"sales_order", "transaction", "payment"}
    # Each slice is a row group: what the load decodes at once is bounded the same way.
    key = latest_document(sliced)["tables"]["fact_sales_order"]["key"]
    groups = pq.ParquetFile(io.BytesIO(sliced.get(key))).metadata.num_row_groups
    assert groups == math.ceil(sales.num_rows / 1_000)


@pytest.mark.parametrize("repeat", [False, True])
def test_keys_landed_out_of_order_are_checked_whole(
    local_lake: LocalLake,
    processed: S3Lake,
    nov_source: dict[str, pa.Table],
    land: Land,
    repeat: bool,
) -> None:
    # This project lands every table in key order; a lake written otherwise is still checked.
    first = small_source(nov_source)
    manifest = get_json(local_lake, land(local_lake, first))
    key = manifest["tables"]["transaction"]["key"]
    landed = read_parquet(local_lake, key)
    backwards = landed.sort_by([("transaction_id", "descending")])
    if repeat:
        ids = backwards.column("transaction_id").to_pylist()
        ids[4] = ids[1]
        backwards = _edited(backwards, "transaction_id", ids)
    (local_lake.root / key).write_bytes(parquet_bytes(backwards))  # another writer's object
    if repeat:
        with pytest.raises(TransformError, match=r"table=transaction\].*appears twice"):
            transform_pending(local_lake, processed, slice_rows=2)
        return
    transform_pending(local_lake, processed, slice_rows=2)
    dimension = outputs(processed)["dim_transaction"]
    assert dimension.column("transaction_id").to_pylist() == (
        backwards.column("transaction_id").to_pylist()
    )
    state = read_parquet(processed, latest_document(processed)["state"]["transaction"])
    assert state.column("transaction_id").to_pylist() == sorted(
        backwards.column("transaction_id").to_pylist()
    )


@pytest.mark.parametrize("table", ["payment", "transaction"])
def test_a_key_twice_in_different_slices_still_stops_the_batch(
    s3_lake: S3Lake, processed: S3Lake, nov_source: dict[str, pa.Table], land: Land, table: str
) -> None:
    rows = nov_source[table].sort_by(f"{table}_id").slice(0, 40)
    ids = rows.column(f"{table}_id").to_pylist()
    ids[35] = ids[2]
    first = small_source(nov_source)
    land(s3_lake, {**first, table: _edited(rows, f"{table}_id", ids)})
    with pytest.raises(TransformError, match=rf"\[transform table={table}\].*appears twice"):
        transform_pending(s3_lake, processed, slice_rows=10)
    assert newest(processed) is None


def test_a_state_kept_as_whole_rows_by_an_older_version_is_carried_on_from(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    # Older versions kept every column of every state table; a lake they wrote goes on to
    # transform the next batch exactly as one written by this version.
    first = small_source(nov_source)
    land(local_lake, first)
    current = LocalLake(tmp_path / "current")
    transform_pending(local_lake, current)
    older = LocalLake(tmp_path / "older")
    shutil.copytree(current.root, older.root)
    for table, key in latest_document(older)["state"].items():
        whole = first[table].select(source_schema(table).names).sort_by(f"{table}_id")
        (older.root / key).write_bytes(parquet_bytes(whole))  # what an older version wrote
    # The same payments again, changed, whose transactions only the state knows; and new
    # transactions merged onto the older state.
    payments = first["payment"]
    payments = _edited(payments, "payment_amount", [Decimal("1.00")] * payments.num_rows)
    payments = _edited(payments, "last_updated", [datetime(2025, 1, 1)] * payments.num_rows)
    transactions = nov_source["transaction"].sort_by("transaction_id").slice(5, 20)
    land(local_lake, {"payment": payments, "transaction": transactions})
    transform_pending(local_lake, current)
    transform_pending(local_lake, older)
    assert latest_document(current)["tables"]["fact_payment"]["rows"] == 5
    for name in WAREHOUSE_TABLES:
        assert outputs(older)[name].equals(outputs(current)[name]), name
    assert latest_document(older)["quarantined"] == latest_document(current)["quarantined"]
    state = read_parquet(older, latest_document(older)["state"]["transaction"])
    assert state.column_names == ["transaction_id", "last_updated"]
    assert state.column("transaction_id").to_pylist() == list(range(1, 26))


def test_a_state_object_out_of_key_order_stops_the_run_naming_the_table_and_object(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    # A table kept by its keys is merged with each batch a row group at a time, which needs its
    # state in key order: this version always writes it so; a lake that does not is refused.
    processed = LocalLake(tmp_path / "processed")
    transform_first_batch(local_lake, processed, nov_source, land)
    key = latest_document(processed)["state"]["transaction"]
    backwards = read_parquet(processed, key).sort_by([("transaction_id", "descending")])
    (processed.root / key).write_bytes(parquet_bytes(backwards))
    land(local_lake, {"transaction": nov_source["transaction"].slice(0, 3)})
    with pytest.raises(TransformError) as raised:
        transform_pending(local_lake, processed)
    assert str(raised.value).startswith(
        f"[transform table=transaction key={key}] the state object is not in key order"
    )


class SpoolWatchingLake(LocalLake):
    """A directory lake that notes the files its objects are streamed into."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.sinks: list[Path] = []

    def get_into(self, key: str, sink: BinaryIO) -> None:
        self.sinks.append(Path(sink.name))
        super().get_into(key, sink)


def test_the_transform_works_on_local_disk_and_leaves_nothing_there(
    tmp_path: Path, spools: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    """A warm Lambda keeps its /tmp between invocations: spooled objects must not pile up."""
    ingestion, processed = SpoolWatchingLake(tmp_path / "ingestion"), LocalLake(tmp_path / "out")
    land(ingestion, small_source(nov_source))
    transform_pending(ingestion, processed)
    assert {path.name for path in ingestion.sinks} == {
        f"landed-{table}.parquet"
        for table in ("design", "currency", "payment_type", "transaction", *FACT_IDS_SOURCES)
    }
    assert all(path.parent.parent == spools for path in ingestion.sinks)
    assert list(spools.iterdir()) == []
    payments = nov_source["payment"].sort_by("payment_id").slice(0, 4)
    land(ingestion, {"payment": _edited(payments, "payment_id", [9, 8, 9, 7])})
    with pytest.raises(TransformError, match="appears twice"):
        transform_pending(ingestion, processed)
    assert list(spools.iterdir()) == []


def test_a_full_local_disk_stops_the_batch_naming_the_table_and_the_setting(
    tmp_path: Path,
    nov_source: dict[str, pa.Table],
    land: Land,
    small_disk: Callable[[str, int], subprocess.CompletedProcess[str]],
) -> None:
    ingestion, processed = LocalLake(tmp_path / "ingestion"), tmp_path / "processed"
    land(ingestion, nov_source)
    code = f"""
import sys
from pathlib import Path
from totes.errors import TotesError
from totes.lake import LocalLake
from totes.transform.transformer import transform_pending
try:
    transform_pending(LocalLake(Path({str(ingestion.root)!r})), LocalLake(Path({str(processed)!r})))
except TotesError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
    done = small_disk(code, 100_000)  # the landed transactions and facts are larger
    assert done.returncode == 3, done.stderr
    assert re.search(
        r"^\[transform table=(dim|fact)_\w+\] the local disk is too small", done.stderr
    )
    assert "lambda_ephemeral_storage_mb" in done.stderr
    assert "Traceback" not in done.stderr
    assert newest(LocalLake(processed)) is None
