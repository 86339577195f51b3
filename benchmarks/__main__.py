"""``make bench``: every stage at generated scales next to raw COPY baselines of the same run.

Prints the Markdown table on stdout, progress on stderr, and writes the Markdown and the raw
samples as JSON into the results folder. Exit status: 0 when the bench ran to the end, whatever
the verdicts (a MISSED target is a finding to report, not a failure of the tool); 3 with
``--strict`` when any target was MISSED; 2 for bad options; 1 when a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import cycles, load, report
from benchmarks.common import (
    db_json,
    drop_database,
    new_database,
    parquet_size,
    progress,
    run_stage,
)
from benchmarks.state_machine import measure_state_machine
from totes.lake import LocalLake
from totes.load.migrations import migrate
from totes.observability import log_to
from totes.settings import DbSettings
from totes_dev.devstack.postgres import postgres_server
from totes_dev.errors import SnapshotLoadError
from totes_dev.source.formats import snapshot_root
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema
from totes_dev.source.snapshots import load_snapshot, snapshot_path

SNAPSHOT = "2024-02-23"
SEED = 1
NO_CHANGE_RUNS_PER_REPEAT = 3
# Scales from here on are generated and measured fewer times: one repetition of scale 100 takes
# minutes (generation alone about three).
LARGE = 100
# The aged incremental needs eleven whole cycles per repetition; above this scale that is the
# longest part of the bench for no target of its own.
AGED_MAX_SCALE = 10


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark extract, transform and load at generated scales against raw COPY "
        "baselines measured in the same run, check the performance targets, and write the "
        "results (Markdown and JSON) into the results folder.",
        epilog="Exit status: 0 ran to the end (verdicts are in the table), 3 with --strict when "
        "a target was MISSED, 2 bad options, 1 a step failed. Uses the server the PG_* "
        "variables name, else a throwaway PostgreSQL cluster.",
    )
    parser.add_argument(
        "--scales",
        type=_scales,
        default=[1, 10, 100],
        help="comma-separated generated scales (1 is the real volume); default 1,10,100",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help=f"repetitions of each measurement at scales below {LARGE} (medians are reported);"
        " default 3",
    )
    parser.add_argument(
        "--repeat-large",
        type=_positive,
        default=1,
        help=f"repetitions at scale {LARGE} and above; default 1",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scales 1 and 10, one repetition each: a check that the bench works, not figures",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="folder for the Markdown and JSON results; default bench-results",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: print the table of an earlier run's JSON results again",
    )
    parser.add_argument("--strict", action="store_true", help="exit 3 when any target is MISSED")
    args = parser.parse_args(argv)
    if args.quick:
        args.scales, args.repeat, args.repeat_large = [1, 10], 1, 1
    return args


def _scales(text: str) -> list[int]:
    try:
        scales = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be whole numbers: {text!r}") from None
    if not scales or scales[0] <= 0:
        raise argparse.ArgumentTypeError(f"scales must be positive: {text!r}")
    return scales


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def bench_snapshot(admin: DbSettings, repeat: int, workdir: Path) -> dict[str, Any] | None:
    try:
        folder = snapshot_path(snapshot_root(), SNAPSHOT)
    except SnapshotLoadError as exc:
        progress(f"real snapshot not measured: {exc}")
        return None
    template = new_database(admin, "feb")
    create_schema(template)
    load_snapshot(template, folder)
    result: dict[str, Any] = {
        "name": SNAPSHOT,
        "cycle_seconds": [],
        "copy_in_fk_seconds": [],
        "no_change_cycle_seconds": [],
        "no_change_run_seconds": [],
    }
    try:
        for rep in range(repeat):
            progress(f"snapshot {SNAPSHOT}: first cycle, repetition {rep + 1}/{repeat}")
            source = new_database(admin, "feb", template=template.database)
            stack = cycles.stack(admin, source, workdir / f"snapshot-{rep}")
            try:
                seconds, _ = cycles.timed_cycle(stack)
                result["cycle_seconds"].append(seconds)
                payload, rows = load.copy_payload(stack.processed)
                result["rows"] = rows
                result["copy_in_fk_seconds"].append(
                    load.raw_copy_in(admin, payload, foreign_keys=True)
                )
                for _ in range(NO_CHANGE_RUNS_PER_REPEAT):
                    wall, cycle = cycles.no_change_run(stack)
                    result["no_change_run_seconds"].append(wall)
                    result["no_change_cycle_seconds"].append(cycle)
            finally:
                drop_database(admin, stack.warehouse)
                drop_database(admin, source)
    finally:
        drop_database(admin, template)
    return result


def _generate(admin: DbSettings, scale: int) -> tuple[DbSettings, float, int]:
    source = new_database(admin, f"gen{scale}")
    create_schema(source)
    progress(f"scale {scale}: generating (seed {SEED})")
    started = time.perf_counter()

    seen = 0

    def on_chunk(total: int, last_day: str) -> None:
        nonlocal seen
        seen += 1
        if seen % 5 == 0 or seen == total:
            progress(f"scale {scale}: generated {seen}/{total} chunks, up to {last_day}")

    rows = generate(source, scale=scale, seed=SEED, on_chunk=on_chunk)
    with psycopg.connect(**source.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # as a long-lived source would be
    return source, time.perf_counter() - started, sum(rows.values())


def bench_scale(admin: DbSettings, scale: int, repeat: int, workdir: Path) -> dict[str, Any]:
    source, generate_seconds, source_rows = _generate(admin, scale)
    stages: dict[str, dict[str, Any]] = {
        stage: {"rows": 0, "seconds": [], "peak_rss_mb": []} for stage in report.STAGES
    }
    raw: dict[str, Any] = {
        "copy_out_seconds": [],
        "copy_out_rows": source_rows,
        "copy_in_fk_seconds": [],
        "copy_in_no_fk_seconds": [],
        "copy_in_rows": 0,
    }
    result: dict[str, Any] = {
        "source_rows": source_rows,
        "repeat": repeat,
        "generate_seconds": generate_seconds,
        "stages": stages,
        "raw": raw,
    }
    try:
        for rep in range(repeat):
            root = workdir / f"scale-{scale}-{rep}"
            ingestion, processed = root / "ingestion", root / "processed"
            note = f"scale {scale}, repetition {rep + 1}/{repeat}"
            progress(f"{note}: extract, with raw COPY out before and after")
            extracted = run_stage(
                "extract", {"source": db_json(source), "ingestion": str(ingestion)}
            )
            _add(stages["extract"], extracted, extracted["rows"])
            raw["copy_out_seconds"].append(extracted["copy_out_seconds"])
            if rep == 0:
                progress(f"{note}: extract fanned out, one process per table")
                result["fanout"] = run_stage(
                    "fanout", {"source": db_json(source), "ingestion": str(root / "fanout")}
                )
                shutil.rmtree(root / "fanout", ignore_errors=True)
                progress(f"{note}: a first cycle through the state machine on the local stack")
                result["state_machine"] = measure_state_machine(admin, source)
            progress(f"{note}: transform")
            transformed = run_stage(
                "transform", {"ingestion": str(ingestion), "processed": str(processed)}
            )
            _add(stages["transform"], transformed, extracted["rows"])
            progress(f"{note}: load")
            warehouse = new_database(admin, "wh")
            try:
                migrate(warehouse)
                loaded = run_stage(
                    "load", {"warehouse": db_json(warehouse), "processed": str(processed)}
                )
            finally:
                drop_database(admin, warehouse)
            _add(stages["load"], loaded, transformed["rows_out"])
            progress(f"{note}: raw COPY in, with and without foreign keys")
            payload, copy_rows = load.copy_payload(LocalLake(processed))
            raw["copy_in_rows"] = copy_rows
            raw["copy_in_fk_seconds"].append(load.raw_copy_in(admin, payload, foreign_keys=True))
            raw["copy_in_no_fk_seconds"].append(
                load.raw_copy_in(admin, payload, foreign_keys=False)
            )
            del payload
            if rep == 0:
                result["parquet"] = _parquet(ingestion, processed)
            shutil.rmtree(root, ignore_errors=True)
        if scale <= AGED_MAX_SCALE:
            result["incremental"] = _aged(admin, source, scale, repeat, workdir)
    finally:
        drop_database(admin, source)
    return result


def _add(stage: dict[str, Any], measured: dict[str, Any], rows: int) -> None:
    stage["rows"] = rows
    stage["seconds"].append(measured["seconds"])
    stage["peak_rss_mb"].append(measured["peak_rss_mb"])


def _parquet(ingestion: Path, processed: Path) -> dict[str, int]:
    ingestion_bytes, ingestion_rows = parquet_size(LocalLake(ingestion))
    processed_bytes, processed_rows = parquet_size(LocalLake(processed))
    return {
        "ingestion_bytes": ingestion_bytes,
        "ingestion_rows": ingestion_rows,
        "processed_bytes": processed_bytes,
        "processed_rows": processed_rows,
    }


def _aged(
    admin: DbSettings, source: DbSettings, scale: int, repeat: int, workdir: Path
) -> dict[str, list[float]]:
    after_1: list[float] = []
    after_10: list[float] = []
    for rep in range(repeat):
        progress(
            f"scale {scale}: {cycles.AGED_CYCLES + 1} cycles with simulated changes, "
            f"repetition {rep + 1}/{repeat}"
        )
        root = workdir / f"aged-{scale}-{rep}"
        first, last = cycles.aged_incremental(admin, source.database, root)
        after_1.append(first)
        after_10.append(last)
        shutil.rmtree(root, ignore_errors=True)
    return {"after_1_seconds": after_1, "after_10_seconds": after_10}


def _machine(admin: DbSettings) -> dict[str, Any]:
    with psycopg.connect(**admin.conninfo()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "cpus": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": row[0] if row else "?",
    }


def run(args: argparse.Namespace, results: dict[str, Any], log_path: Path) -> None:
    """Fill ``results`` as each step ends, so a failure late in a long run keeps the rest."""
    started = time.perf_counter()
    with (
        open(log_path, "w") as log_file,
        postgres_server() as admin,
        tempfile.TemporaryDirectory(prefix="totes-bench-") as tmp,
        contextlib.redirect_stdout(sys.stderr),
    ):
        # the pipeline's own log lines (thousands) would bury the progress lines
        log_to(log_file)
        workdir = Path(tmp)
        results["machine"] = _machine(admin)
        small_repeat = args.repeat
        results["snapshot"] = bench_snapshot(admin, small_repeat, workdir)
        results["scales"] = {}
        for scale in args.scales:
            repeat = args.repeat_large if scale >= LARGE else args.repeat
            results["scales"][str(scale)] = bench_scale(admin, scale, repeat, workdir)
        results["machine"]["load_after"] = round(os.getloadavg()[0], 1)
        log_to(None)
    results["seconds"] = time.perf_counter() - started


def _stem(out: Path, started_at: datetime) -> Path:
    return out / f"bench-{started_at.strftime('%Y%m%dT%H%M%SZ')}"


def write(results: dict[str, Any], stem: Path) -> tuple[Path, Path, str]:
    markdown = report.render_markdown(results)
    md_path, json_path = stem.with_suffix(".md"), stem.with_suffix(".json")
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    return md_path, json_path, markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        earlier = json.loads(args.from_json.read_text())
        print(report.render_markdown(earlier), end="")
        return 3 if args.strict and report.missed(earlier) else 0
    started_at = datetime.now(UTC)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = _stem(args.out, started_at)
    log_path = stem.with_suffix(".log")
    progress(f"pipeline log lines go to {log_path}")
    results: dict[str, Any] = {"started": started_at.isoformat(timespec="seconds")}
    try:
        run(args, results, log_path)
    except Exception as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        md_path, json_path, _ = write(results, stem)
        progress(f"failed: {results['error']} (log {log_path}; what ran is in {json_path})")
        return 1
    md_path, json_path, markdown = write(results, stem)
    print(markdown, end="")
    progress(f"wrote {md_path} and {json_path}")
    if args.strict and report.missed(results):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
