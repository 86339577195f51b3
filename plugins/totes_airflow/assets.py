"""What the pipeline reads and changes, as Airflow Assets, so that the Assets view shows where the
data goes (totesys -> ingestion lake -> processed lake -> warehouse tables) and every asset
event says how many rows that run moved.

The lakes are named by their S3 buckets, exactly as Terraform creates them. The databases are
named by role and environment under the ``totes`` scheme rather than ``postgres://host/...``:
their hosts live in secrets and must not appear in the DAG's serialised form, and an asset URI
must not change when a password rotation moves a host.

Extras are built from the execution output; nothing here talks to AWS or a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import Asset

from totes.naming import ResourceNames
from totes_airflow.warehouse_checks import DIMENSIONS, FACTS

WAREHOUSE_TABLES: tuple[str, ...] = tuple(d.name for d in DIMENSIONS) + tuple(f.name for f in FACTS)


@dataclass(frozen=True)
class PipelineAssets:
    source: Asset
    ingestion_lake: Asset
    processed_lake: Asset
    warehouse: dict[str, Asset]  # table name -> asset

    @classmethod
    def for_environment(cls, names: ResourceNames) -> PipelineAssets:
        env = names.environment
        return cls(
            source=Asset(name="totesys", uri=f"totes://{env}/totesys", group="source"),
            ingestion_lake=Asset(
                name="ingestion_lake", uri=f"s3://{names.ingestion_bucket}/", group="lake"
            ),
            processed_lake=Asset(
                name="processed_lake", uri=f"s3://{names.processed_bucket}/", group="lake"
            ),
            warehouse={
                table: Asset(
                    name=f"warehouse.{table}",
                    uri=f"totes://{env}/warehouse/{table}",
                    group="warehouse",
                )
                for table in WAREHOUSE_TABLES
            },
        )

    @property
    def lakes(self) -> list[Asset]:
        return [self.ingestion_lake, self.processed_lake]

    @property
    def warehouse_tables(self) -> list[Asset]:
        return list(self.warehouse.values())


def _int_counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(v) for k, v in sorted(value.items())}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def lake_extras(output: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The asset-event extras of the ingestion and processed lakes for one execution output."""
    output = output or {}
    extract: Mapping[str, Any] = _mapping(output.get("extract"))
    transform: Mapping[str, Any] = _mapping(output.get("transform"))
    run = {
        "run_id": output.get("run_id"),
        "skipped": bool(output.get("skipped")),
        "full_scan": bool(output.get("full_scan")),
    }
    ingestion = {
        **run,
        "batch_id": extract.get("batch_id"),
        "rows": _int_counts(extract.get("rows")),
    }
    processed = {
        **run,
        "batches": list(transform.get("batches") or []),
        "rows": _int_counts(transform.get("rows")),
        "quarantined": _int_counts(transform.get("quarantined")),
    }
    return ingestion, processed


def warehouse_extras(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per warehouse table, what this run loaded into it (zero when nothing)."""
    loaded: Mapping[str, int] = summary.get("loaded") or {}
    added: Mapping[str, int] = summary.get("fact_versions_added") or {}
    extras = {}
    for table in WAREHOUSE_TABLES:
        extra: dict[str, Any] = {"run_id": summary.get("run_id"), "rows": int(loaded.get(table, 0))}
        if table.startswith("fact_"):
            extra["fact_versions_added"] = int(added.get(table, 0))
        extras[table] = extra
    return extras
