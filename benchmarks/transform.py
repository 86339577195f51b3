"""Transform benchmark: a full first transform at generated scale, and an incremental batch.

    python -m benchmarks.transform [--scale 100]

1. Generates ``scale`` times the real volume in memory (the same generator ``totes generate``
   uses), lands it as one ingestion batch in a local directory lake, then runs
   ``transform_pending`` in a fresh process and reports its seconds and peak RSS, so neither the
   generator nor the landing inflates the peak.
2. Lands the real 2024-11-15 snapshot in a moto S3 lake, transforms it, lands one incremental
   batch shaped like a busy 20 minutes (sales and purchases with their transactions and
   payments, plus a 37-row paid-flip burst) and times ``lambda_handler`` on it.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from totes.contracts.ingestion import land_rows, to_landing_types
from totes.lake import LocalLake, S3Lake
from totes.tables import LOAD_ORDER, SOURCE_TABLES
from totes.transform.transformer import transform_pending
from totes_dev.devstack.aws import LambdaContext
from totes_dev.landing import with_landing_columns
from totes_dev.source.formats import snapshot_root

CONTEXT = LambdaContext("totes-bench-transform")


def generated(scale: float, seed: int = 1) -> dict[str, pa.Table]:
    from totes_dev.source import synthetic

    rng = np.random.default_rng(seed)
    cursor = synthetic.Cursor()
    parts = [synthetic.seed_day(rng, cursor)]
    one_day = np.timedelta64(1, "D")
    end = synthetic.HISTORY_END.astype("datetime64[D]") + one_day
    day = synthetic.SEED_DAY + one_day
    while day < end:
        chunk_end = min(day + 28 * one_day, end)
        parts.append(synthetic.history_chunk(rng, cursor, day, chunk_end, scale=scale))
        day = chunk_end
    return {
        name: pa.concat_tables([p[name] for p in parts if name in p]).select(
            SOURCE_TABLES[name].column_names
        )
        for name in LOAD_ORDER
    }


def land(lake: Any, tables: dict[str, pa.Table]) -> str:
    rows = {name: with_landing_columns(name, t) for name, t in tables.items()}
    return land_rows(lake, rows, run_id="benchmark")


def full_first(scale: float, workdir: Path) -> dict[str, Any]:
    source = generated(scale)
    land(LocalLake(workdir / "ingestion"), source)
    rows = {name: t.num_rows for name, t in source.items()}
    del source
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.transform", "--transform-only", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    return {"scale": scale, "source_rows": sum(rows.values()), **measured}


def transform_only(workdir: Path) -> None:
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        summary = transform_pending(
            LocalLake(workdir / "ingestion"), LocalLake(workdir / "processed")
        )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fact_rows = sum(v for k, v in summary["rows"].items() if k.startswith("fact_"))
    print(
        json.dumps(
            {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), "facts": fact_rows}
        )
    )


def snapshot() -> dict[str, pa.Table]:
    folder = snapshot_root() / "snapshot-2024-11-15"
    return {
        name: to_landing_types(
            name, pq.read_table(folder / f"{name}.parquet").replace_schema_metadata(None)
        ).select(spec.column_names)
        for name, spec in SOURCE_TABLES.items()
    }


def _shifted(rows: pa.Table, key: str, offset: int, minutes: int) -> pa.Table:
    """Copies of ``rows`` as new ids created ``minutes`` after the snapshot."""
    shift = pa.scalar(timedelta(minutes=minutes), pa.duration("ms"))
    for column, values in (
        (key, pc.add(rows[key], offset)),
        ("created_at", pc.add(rows["created_at"], shift)),
        ("last_updated", pc.add(rows["last_updated"], shift)),
    ):
        rows = rows.set_column(rows.schema.get_field_index(column), column, values)
    return rows


def incremental(source: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Twenty new sales, eight purchases, their 28 transactions and payments, 37 paid flips."""
    last = {name: pc.max(t[f"{name}_id"]).as_py() for name, t in source.items()}
    sales = _shifted(source["sales_order"].slice(0, 20), "sales_order_id", last["sales_order"], 20)
    purchases = _shifted(
        source["purchase_order"].slice(0, 8), "purchase_order_id", last["purchase_order"], 20
    )
    transactions = _shifted(
        source["transaction"].slice(0, 28), "transaction_id", last["transaction"], 20
    )
    new_payments = _shifted(source["payment"].slice(0, 28), "payment_id", 10 * last["payment"], 20)
    unpaid = source["payment"].filter(pc.invert(source["payment"]["paid"])).slice(0, 37)
    flips = unpaid.set_column(
        unpaid.schema.get_field_index("paid"), "paid", pa.repeat(pa.scalar(True), 37)
    )
    return {
        "sales_order": sales,
        "purchase_order": purchases,
        "transaction": transactions,
        "payment": pa.concat_tables([new_payments, flips]),
    }


def incremental_handler() -> dict[str, Any]:
    import boto3

    from totes.transform.handler import lambda_handler
    from totes_dev.devstack.aws import REGION, start_moto

    stack = start_moto()
    try:
        bucket = "totes-benchmark-transform"
        boto3.client("s3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        os.environ["TOTES_INGESTION_URI"] = f"s3://{bucket}/ingestion"
        os.environ["TOTES_PROCESSED_URI"] = f"s3://{bucket}/processed"
        ingestion = S3Lake(bucket, "ingestion")
        source = snapshot()
        land(ingestion, source)
        started = time.perf_counter()
        lambda_handler({}, CONTEXT)
        first_seconds = time.perf_counter() - started
        land(ingestion, incremental(source))
        started = time.perf_counter()
        summary = lambda_handler({}, CONTEXT)
        seconds = time.perf_counter() - started
    finally:
        stack.stop()
    return {
        "snapshot_first_seconds": round(first_seconds, 2),
        "incremental_handler_seconds": round(seconds, 3),
        "incremental_rows": {k: v for k, v in summary["rows"].items() if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=100)
    parser.add_argument("--transform-only", type=Path)
    args = parser.parse_args()
    if args.transform_only:
        transform_only(args.transform_only)
        return
    # The pipeline's own log lines go to stderr so stdout carries exactly one JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        with tempfile.TemporaryDirectory() as workdir:
            full = full_first(args.scale, Path(workdir))
        result = {"full_first_transform": full, **incremental_handler()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
