from __future__ import annotations

from totes.contracts.warehouse import TABLES
from totes.naming import ResourceNames
from totes_airflow.assets import PipelineAssets, lake_extras, warehouse_extras


def test_assets_name_the_buckets_terraform_creates_and_every_warehouse_table() -> None:
    assets = PipelineAssets.for_environment(ResourceNames("prod"))
    assert assets.ingestion_lake.uri == "s3://totes-prod-ingestion/"
    assert assets.processed_lake.uri == "s3://totes-prod-processed/"
    assert assets.source.uri == "totes://prod/totesys"
    assert set(assets.warehouse) == set(TABLES)
    assert assets.warehouse["fact_payment"].uri == "totes://prod/warehouse/fact_payment"
    assert {a.group for a in assets.warehouse_tables} == {"warehouse"}
    # Environments never share an asset.
    dev = PipelineAssets.for_environment(ResourceNames("dev"))
    assert not {a.uri for a in dev.warehouse_tables} & {a.uri for a in assets.warehouse_tables}


def test_lake_extras_carry_each_stages_rows() -> None:
    ingestion, processed = lake_extras(
        {
            "run_id": "r1",
            "extract": {"batch_id": "b1", "rows": {"sales_order": 7, "payment": 2}},
            "transform": {
                "batches": ["b1"],
                "rows": {"fact_sales_order": 7},
                "quarantined": {"fact_payment": 1},
            },
        }
    )
    assert ingestion == {
        "run_id": "r1",
        "skipped": False,
        "full_scan": False,
        "batch_id": "b1",
        "rows": {"payment": 2, "sales_order": 7},
    }
    assert processed["rows"] == {"fact_sales_order": 7}
    assert processed["quarantined"] == {"fact_payment": 1}
    assert processed["batches"] == ["b1"]


def test_a_skipped_run_has_empty_lake_extras() -> None:
    ingestion, processed = lake_extras({"run_id": "r2", "skipped": True})
    assert ingestion["skipped"] is True
    assert ingestion["rows"] == {}
    assert processed["rows"] == {}
    assert lake_extras(None)[0]["rows"] == {}


def test_warehouse_extras_give_every_table_its_rows_and_facts_their_versions() -> None:
    extras = warehouse_extras(
        {
            "run_id": "r1",
            "loaded": {"dim_staff": 3, "fact_sales_order": 7},
            "fact_versions_added": {"fact_sales_order": 5},
        }
    )
    assert set(extras) == set(TABLES)
    assert extras["dim_staff"] == {"run_id": "r1", "rows": 3}
    assert extras["fact_sales_order"] == {"run_id": "r1", "rows": 7, "fact_versions_added": 5}
    assert extras["fact_payment"] == {"run_id": "r1", "rows": 0, "fact_versions_added": 0}
