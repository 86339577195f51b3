"""What every measurement shares: throwaway databases, stage child processes, peak memory.

Each stage runs in a child process of its own (``python -m benchmarks.stage``) so that its
peak resident memory is its own: not the generator's, not an earlier stage's, not this
orchestrating process's.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from totes.commits import newest
from totes.lake import Lake
from totes.settings import DbSettings

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """A progress line on stderr, so stdout carries only the final table."""
    elapsed = time.monotonic() - _STARTED
    print(f"[bench {elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)


def new_database(admin: DbSettings, role: str, *, template: str | None = None) -> DbSettings:
    """An empty database (or a file-level copy of ``template``, far faster than reloading)."""
    name = f"totes_bench_{role}_{uuid.uuid4().hex[:8]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(statement)
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


def drop_database(admin: DbSettings, db: DbSettings) -> None:
    """Dropped as soon as a measurement is done: scale 100 databases are gigabytes each."""
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.database))
        )


def peak_rss_mb() -> float:
    """This process's own peak resident set size.

    ``ru_maxrss`` of a child carries over the high-water mark of the process image it was
    started from (the kernel keeps the larger of the two across exec), so a small child of a
    large parent would report the parent's size. ``VmHWM`` belongs to the current image only."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def db_json(db: DbSettings) -> dict[str, Any]:
    return asdict(db)


def db_from_json(document: dict[str, Any]) -> DbSettings:
    return DbSettings(**document)


def run_stage(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one stage in a fresh interpreter and return what it measured.

    The result comes back through a file, because the pipeline's log lines go to stdout."""
    with tempfile.TemporaryDirectory(prefix="totes-bench-") as tmp:
        result = Path(tmp) / "result.json"
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.stage", stage, json.dumps(config), str(result)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not result.exists():
            raise RuntimeError(
                f"the {stage} stage failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
            )
        measured: dict[str, Any] = json.loads(result.read_text())
        return measured


def committed_tables(lake: Lake) -> dict[str, Any]:
    """The newest committed manifest's table entries (each with its object ``key``)."""
    latest = newest(lake)
    if latest is None:
        raise RuntimeError("the lake holds no committed batch")
    tables: dict[str, Any] = latest.document["tables"]
    return tables


def parquet_size(lake: Lake) -> tuple[int, int]:
    """Bytes and rows of the newest batch's data objects (state objects left out)."""
    nbytes = rows = 0
    for entry in committed_tables(lake).values():
        if entry and entry.get("key"):
            nbytes += len(lake.get(entry["key"]))
            rows += int(entry.get("rows") or 0)
    return nbytes, rows
