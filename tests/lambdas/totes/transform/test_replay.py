from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from totes.commits import newest
from totes.lake import Lake, LocalLake, get_json, read_parquet
from totes.tables import LOAD_ORDER
from totes.transform.replay import replay
from totes.transform.transformer import transform_pending

Land = Callable[..., str]


def _latest(lake: Lake) -> dict[str, Any]:
    latest = newest(lake)
    assert latest is not None
    return latest.document


def test_a_row_quarantined_for_a_late_reference_goes_through_when_replayed(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    designs = nov_source["design"].sort_by("design_id")
    early = {name: nov_source[name] for name in LOAD_ORDER if name not in ("sales_order",)}
    early["design"] = designs.slice(0, 400)
    early["payment"] = nov_source["payment"].slice(0, 0)
    early["purchase_order"] = nov_source["purchase_order"].slice(0, 0)
    land(local_lake, early)
    late_sale = nov_source["sales_order"].filter(
        pc.greater(nov_source["sales_order"]["design_id"], 400)
    )
    late_sale = late_sale.sort_by("sales_order_id").slice(0, 1)
    land(local_lake, {"sales_order": late_sale})
    first = transform_pending(local_lake, processed)
    assert first["quarantined"]["sales_order"] == 1
    keys = _latest(processed)["quarantine_keys"]

    land(local_lake, {"design": designs.slice(400)})
    result = replay(local_lake, processed, keys)
    assert result["rows"] == {"sales_order": 1}
    manifest = get_json(local_lake, result["manifest_key"])
    assert manifest["replay_of"] == keys
    replayed = read_parquet(local_lake, manifest["tables"]["sales_order"]["key"])
    assert replayed.select(late_sale.column_names).equals(late_sale)

    second = transform_pending(local_lake, processed)
    assert second["quarantined"] == dict.fromkeys(LOAD_ORDER, 0)
    assert second["rows"]["fact_sales_order"] == 1
    fact_key = _latest(processed)["tables"]["fact_sales_order"]["key"]
    fact = read_parquet(processed, fact_key)
    assert (
        fact.column("sales_order_id").to_pylist() == late_sale.column("sales_order_id").to_pylist()
    )
    assert fact.column("content_hash").to_pylist() == replayed.column("_content_hash").to_pylist()


def test_a_replayed_row_superseded_by_a_newer_version_is_skipped(
    local_lake: LocalLake, tmp_path: Path, nov_source: dict[str, pa.Table], land: Land
) -> None:
    processed = LocalLake(tmp_path / "processed")
    land(local_lake, {"currency": nov_source["currency"]})
    bad = nov_source["currency"].filter(pc.equal(nov_source["currency"]["currency_id"], 1))
    code = bad.schema.get_field_index("currency_code")
    land(local_lake, {"currency": bad.set_column(code, "currency_code", pa.array(["XYZ"]))})
    newer = bad.set_column(
        bad.schema.get_field_index("last_updated"),
        "last_updated",
        pc.add(bad["last_updated"], pa.scalar(1000, pa.duration("ms"))),
    )
    land(local_lake, {"currency": newer})
    transform_pending(local_lake, processed)
    quarantined = list(processed.list("_quarantine/"))
    assert len(quarantined) == 1
    result = replay(local_lake, processed, quarantined)
    assert result == {"manifest_key": None, "rows": {}, "skipped": {"currency": 1}}
