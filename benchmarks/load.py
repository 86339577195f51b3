"""Warehouse load benchmark: prints one JSON line.

* ``load_vs_copy``: loading the first processed batch of a generated source (scale 10 unless
  ``--scale``) with ``load_pending`` against a raw ``COPY`` of the same rows into the same tables,
  foreign keys included, side by side in this run. Goal: load throughput >= half of COPY's.
* ``first_cycle``: the whole first cycle (extract, transform, load) on the 2024-02-23 snapshot
  against the raw COPY of its rows. Goal: <= 1.5 times the COPY baseline.
* ``no_change_run``: a ``totes run`` with nothing new, as a new process. Goal: < 2 seconds.

Run: ``python -m benchmarks.load [--scale N]``. Uses the server the ``PG_*`` variables name, or a
throwaway cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from totes.commits import newest
from totes.contracts.warehouse import LOAD_ORDER
from totes.extract.extractor import run_extract
from totes.lake import Lake, LocalLake, read_parquet
from totes.load import merge
from totes.load.loader import arrow_to_csv, load_pending
from totes.load.migrations import migrate
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes.transform.transformer import transform_pending
from totes_dev.source.formats import snapshot_root
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema
from totes_dev.source.snapshots import load_snapshot, snapshot_path


def _database(admin: DbSettings, role: str) -> DbSettings:
    name = f"totes_bench_{role}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


def _stack(admin: DbSettings, source: DbSettings, root: Path) -> Stack:
    return Stack(
        source=source,
        ingestion=LocalLake(root / "ingestion"),
        processed=LocalLake(root / "processed"),
        warehouse=_database(admin, "wh"),
        settings=ExtractSettings(),
    )


def raw_copy_seconds(admin: DbSettings, processed: Lake) -> tuple[float, int]:
    """COPY the newest processed batch's rows straight into a migrated warehouse's tables."""
    latest = newest(processed)
    assert latest is not None
    manifest = latest.document
    payload: list[tuple[Any, bytes]] = []
    rows = 0
    for spec in LOAD_ORDER:
        entry = manifest["tables"].get(spec.name) or {}
        if entry.get("key"):
            data = read_parquet(processed, entry["key"])
            payload.append((spec, arrow_to_csv(spec, data, key=entry["key"])))
            rows += data.num_rows
    target = _database(admin, "copy")
    migrate(target)
    with psycopg.connect(**target.conninfo()) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            for spec, data in payload:
                columns = ", ".join(merge.ident(c.name) for c in spec.staged_columns)
                with cur.copy(
                    f"COPY {merge.ident(spec.name)} ({columns}) FROM STDIN (FORMAT csv)"
                ) as copy:
                    copy.write(data)
        conn.commit()
        return time.perf_counter() - started, rows


def bench_load(admin: DbSettings, scale: float, root: Path) -> dict[str, Any]:
    source = _database(admin, "gen")
    create_schema(source)
    generate(source, scale=scale, seed=1)
    stack = _stack(admin, source, root / "generated")
    # extract and transform once; then time only the load of that processed batch
    run_extract(
        source,
        stack.ingestion,
        run_id="bench",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=True,
        settings=stack.settings,
    )
    transform_pending(stack.ingestion, stack.processed)
    migrate(stack.warehouse)
    started = time.perf_counter()
    load_pending(stack.warehouse, stack.processed)
    load_seconds = time.perf_counter() - started
    copy_seconds, rows = raw_copy_seconds(admin, stack.processed)
    return {
        "scale": scale,
        "rows": rows,
        "load_seconds": round(load_seconds, 3),
        "copy_seconds": round(copy_seconds, 3),
        "load_rows_per_second": round(rows / load_seconds),
        "copy_rows_per_second": round(rows / copy_seconds),
        "throughput_vs_copy": round(copy_seconds / load_seconds, 3),
        "goal": ">= 0.5",
    }


def _env(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    for suffix, db in (("", stack.source), ("_DW", stack.warehouse)):
        env.update(
            {
                f"PG_HOST{suffix}": db.host,
                f"PG_PORT{suffix}": str(db.port),
                f"PG_USER{suffix}": db.user,
                f"PG_PASSWORD{suffix}": db.password,
                f"PG_DATABASE{suffix}": db.database,
            }
        )
    assert isinstance(stack.ingestion, LocalLake)
    assert isinstance(stack.processed, LocalLake)
    env["TOTES_INGESTION_URI"] = str(stack.ingestion.root)
    env["TOTES_PROCESSED_URI"] = str(stack.processed.root)
    return env


def bench_first_cycle(admin: DbSettings, root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    source = _database(admin, "feb")
    create_schema(source)
    load_snapshot(source, snapshot_path(snapshot_root(), "2024-02-23"))
    stack = _stack(admin, source, root / "feb")
    migrate(stack.warehouse)  # a deployed warehouse is migrated before its first cycle
    started = time.perf_counter()
    summary = run_cycle(stack)
    cycle_seconds = time.perf_counter() - started
    copy_seconds, rows = raw_copy_seconds(admin, stack.processed)
    first = {
        "rows": rows,
        "cycle_seconds": round(cycle_seconds, 3),
        "stage_seconds": summary["seconds"],
        "copy_seconds": round(copy_seconds, 3),
        "cycle_vs_copy": round(cycle_seconds / copy_seconds, 3),
        "goal": "<= 1.5",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "totes.cli", "run"],
        env=_env(stack),
        capture_output=True,
        text=True,
        check=True,
    )
    no_change_seconds = time.perf_counter() - started
    last = json.loads(done.stdout.strip().splitlines()[-1])
    no_change = {
        "seconds": round(no_change_seconds, 3),
        "fact_versions_added": sum(last["fact_versions_added"].values()),
        "stage_seconds": last["seconds"],
        "goal": "< 2",
    }
    return first, no_change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0)
    args = parser.parse_args()
    from totes_dev.devstack.postgres import postgres_server

    with postgres_server() as admin, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first, no_change = bench_first_cycle(admin, root)
        load = bench_load(admin, args.scale, root)
    print(json.dumps({"load_vs_copy": load, "first_cycle": first, "no_change_run": no_change}))


if __name__ == "__main__":
    main()
