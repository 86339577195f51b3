"""Extract benchmark: prints one JSON line.

* ``no_change``: the Lambda handler invoked with nothing new on the real-sized database (the
  2024-11-15 snapshot already landed) against the moto S3 server over HTTP: warm invocations,
  as on a warm Lambda. Goal: < 0.1 s of handler time.
* ``first_run``: a full first extract of a generated source (scale 10 unless ``--scale``) into
  moto S3, next to a raw ``COPY (SELECT ...) TO STDOUT`` of the same tables read to the end in the
  same process (both the plain column list and the extract's own statement with the content
  hash). Goal: extract rows/s >= half of the raw COPY's. Peak memory of that process (its own
  resident high-water mark, and Arrow's pool peak) is reported; it runs in a child process so the
  in-process moto server's memory is not counted.

Run: ``python -m benchmarks.extract [--scale N]``. Uses the server the ``PG_*`` variables name, or
a throwaway cluster, and an in-process moto server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import psycopg
import pyarrow as pa
from psycopg import sql

from totes.extract import handler
from totes.extract.extractor import run_extract
from totes.extract.sql import copy_rows_sql
from totes.lake import S3Lake
from totes.settings import DbSettings, ExtractSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.devstack.aws import REGION, LambdaContext, start_moto
from totes_dev.devstack.postgres import postgres_server
from totes_dev.source.formats import snapshot_root
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema
from totes_dev.source.snapshots import load_snapshot, snapshot_path

NO_CHANGE_RUNS = 30

CONTEXT = LambdaContext("totes-bench-extract")


def _database(admin: DbSettings, role: str) -> DbSettings:
    name = f"totes_bench_{role}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = DbSettings(admin.host, admin.port, admin.user, admin.password, name)
    create_schema(db)
    return db


def _bucket() -> str:
    name = f"totes-bench-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return name


def _env(db: DbSettings, bucket: str) -> dict[str, str]:
    return {
        "PG_HOST": db.host,
        "PG_PORT": str(db.port),
        "PG_USER": db.user,
        "PG_PASSWORD": db.password,
        "PG_DATABASE": db.database,
        "TOTES_INGESTION_URI": f"s3://{bucket}/ingestion",
        "TOTES_FULL_SCAN_CADENCE": "daily",
    }


def bench_no_change(admin: DbSettings) -> dict[str, Any]:
    source = _database(admin, "nov")
    load_snapshot(source, snapshot_path(snapshot_root(), "2024-11-15"))
    os.environ.update(_env(source, _bucket()))
    event = {
        "run_id": "bench",
        "window_start": None,
        "window_end": datetime.now(UTC).isoformat(),
        "full_scan": False,
    }
    first = handler.lambda_handler(event, CONTEXT)  # lands everything, builds the cached clients
    assert first["batch_id"] is not None
    seconds: list[float] = []
    for _ in range(NO_CHANGE_RUNS):
        started = time.perf_counter()
        result = handler.lambda_handler(event, CONTEXT)
        seconds.append(time.perf_counter() - started)
        assert result["batch_id"] is None
    return {
        "rows_in_source": sum(first["rows"].values()),
        "invocations": NO_CHANGE_RUNS,
        "median_seconds": round(statistics.median(seconds), 4),
        "p90_seconds": round(statistics.quantiles(seconds, n=10)[-1], 4),
        "max_seconds": round(max(seconds), 4),
        "goal": "< 0.1",
    }


def _raw_copy(source: DbSettings, statements: list[str]) -> tuple[float, int]:
    """Read every statement's COPY output to the end, as fast as psycopg hands it over."""
    nbytes = 0
    with psycopg.connect(**source.conninfo()) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for statement in statements:
            with cur.copy(statement) as copy:
                for chunk in copy:
                    nbytes += len(chunk)
        return time.perf_counter() - started, nbytes


def _peak_rss_mb() -> float:
    """This process's own peak resident set size.

    On Linux ``ru_maxrss`` of a child started with fork carries the parent's size at the fork
    (here the parent holds the moto server and the generator's data), which can hide the child's
    own peak; ``VmHWM`` in ``/proc/self/status`` is the child's own high-water mark."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_first_run() -> dict[str, Any]:
    """Child process: raw COPY, the extract, raw COPY again (the faster raw run counts)."""
    source = DbSettings(
        os.environ["PG_HOST"],
        int(os.environ["PG_PORT"]),
        os.environ["PG_USER"],
        os.environ.get("PG_PASSWORD", ""),
        os.environ["PG_DATABASE"],
    )
    bucket = os.environ["TOTES_INGESTION_URI"][len("s3://") :].split("/", 1)[0]
    specs = [source_table(name) for name in LOAD_ORDER]
    plain = [
        f"COPY (SELECT {', '.join(c.select_expression for c in t.columns)} FROM {t.quoted}"
        f' ORDER BY "{t.primary_key}") TO STDOUT (FORMAT csv)'
        for t in specs
    ]
    hashed = [copy_rows_sql(t, [], lower=False, upper=False) for t in specs]
    plain_before, _ = _raw_copy(source, plain)
    hashed_before, _ = _raw_copy(source, hashed)
    started = time.perf_counter()
    summary = run_extract(
        source,
        S3Lake(bucket, "ingestion"),
        run_id="bench",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=True,
        settings=ExtractSettings(),
    )
    extract_seconds = time.perf_counter() - started
    maxrss_mb = _peak_rss_mb()
    arrow_peak_mb = pa.default_memory_pool().max_memory() / 2**20
    plain_after, copy_bytes = _raw_copy(source, plain)
    hashed_after, _ = _raw_copy(source, hashed)
    rows = sum(summary["rows"].values())
    plain_seconds = min(plain_before, plain_after)
    hashed_seconds = min(hashed_before, hashed_after)
    return {
        "rows": rows,
        "csv_mb": round(copy_bytes / 2**20, 1),
        "extract_seconds": round(extract_seconds, 3),
        "extract_rows_per_second": round(rows / extract_seconds),
        "raw_copy_seconds": round(plain_seconds, 3),
        "raw_copy_rows_per_second": round(rows / plain_seconds),
        "raw_copy_with_hash_seconds": round(hashed_seconds, 3),
        "speed_vs_raw_copy": round(plain_seconds / extract_seconds, 3),
        "speed_vs_raw_copy_with_hash": round(hashed_seconds / extract_seconds, 3),
        "goal": ">= 0.5",
        "peak_maxrss_mb": round(maxrss_mb, 1),
        "arrow_pool_peak_mb": round(arrow_peak_mb, 1),
        "memory_goal_mb_at_scale_100": "< 500",
    }


def bench_first_run(admin: DbSettings, scale: float) -> dict[str, Any]:
    source = _database(admin, "gen")
    started = time.perf_counter()
    generate(source, scale=scale, seed=1)
    generate_seconds = time.perf_counter() - started
    with psycopg.connect(**source.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    env = {**os.environ, **_env(source, _bucket())}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.extract", "--child"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"scale": scale, "generate_seconds": round(generate_seconds, 1), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with contextlib.redirect_stdout(io.StringIO()):  # the extract's own log lines
            result = measure_first_run()
        print(json.dumps(result))
        return
    stack = start_moto()
    try:
        with postgres_server() as admin, contextlib.redirect_stdout(io.StringIO()):
            with_snapshot = bench_no_change(admin)
            first = bench_first_run(admin, args.scale)
    finally:
        stack.stop()
    print(json.dumps({"no_change": with_snapshot, "first_run": first}))


if __name__ == "__main__":
    main()
