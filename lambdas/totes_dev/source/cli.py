"""``totes source ...``: manage the totesys source database (create, load, generate, simulate)."""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

from totes.db import connect
from totes.progress import Progress
from totes.settings import source_db
from totes_dev.errors import DevSourceError
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema, has_schema, row_counts
from totes_dev.source.simulate import simulate
from totes_dev.source.snapshots import load_snapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = subparsers.add_parser(
        "source",
        help="the totesys source database (local work and tests)",
        description="A local totesys source in the database PG_* name: its schema, the real "
        "snapshots, generated data shaped like the real data, and simulated activity.",
    )
    commands = source.add_subparsers(dest="source_command", required=True)

    create = commands.add_parser(
        "create",
        help="create the real totesys schema in PG_DATABASE",
        description="Create the 11 totesys tables, exactly as the real source defines them.",
    )
    create.set_defaults(handler=_create)

    counts = commands.add_parser(
        "counts",
        help="print rows per table as JSON",
        description="Print the row count of each of the 11 tables as one JSON object.",
    )
    counts.set_defaults(handler=_counts)

    load = commands.add_parser(
        "load",
        help="load a real snapshot, upserting rows by primary key",
        description="Load a real snapshot (pg_dump or folder of Parquet files) in one "
        "transaction: new rows are inserted, changed rows take the snapshot's values "
        "(last_updated included), so loading a newer snapshot reproduces the real edits.",
    )
    load.add_argument("--snapshot", type=Path, required=True, help="snapshot folder or dump")
    load.set_defaults(handler=_load)

    gen = commands.add_parser(
        "generate",
        help="fill an empty database with synthetic data",
        description="Generate a history shaped like the real data (seed day, weekday business "
        "hours, sale and purchase triples, paid flips) into an empty database; progress on "
        "stderr.",
    )
    gen.add_argument("--scale", type=float, default=1.0, help="1 = the real 2024-11-15 volume")
    gen.add_argument(
        "--seed", type=int, default=1, help="random seed: the same seed, the same rows"
    )
    gen.set_defaults(handler=_generate)

    sim = commands.add_parser(
        "simulate",
        help="apply M minutes of realistic activity and print what changed as JSON",
        description="Insert orders, flip payments to paid and update orders as the real source "
        "would over the next M minutes, optionally with edits that keep last_updated and with "
        "deletes; print the ids of every change.",
    )
    sim.add_argument("--minutes", type=int, required=True, help="minutes of activity to add")
    sim.add_argument("--seed", type=int, default=None, help="default: a fresh random seed")
    sim.add_argument("--silent-edits", action="store_true", help="also edit rows in place")
    sim.add_argument("--deletes", action="store_true", help="also delete rows")
    sim.set_defaults(handler=_simulate)


def _create(args: argparse.Namespace) -> int:
    create_schema(source_db())
    return 0


def _counts(args: argparse.Namespace) -> int:
    with connect(source_db(), error=DevSourceError, role="source") as conn:
        print(json.dumps(row_counts(conn)))
    return 0


def _ensure_schema() -> None:
    """Create the schema in an empty database, so one command fills a fresh database."""
    with connect(source_db(), error=DevSourceError, role="source") as conn:
        present = has_schema(conn)
    if not present:
        create_schema(source_db())


def _load(args: argparse.Namespace) -> int:
    _ensure_schema()
    print(json.dumps(load_snapshot(source_db(), args.snapshot)))
    return 0


def _generate(args: argparse.Namespace) -> int:
    _ensure_schema()
    progress = Progress("generating", None)

    def step(total: int, chunk_end: str) -> None:
        progress.total = total
        progress.advance(f"up to {chunk_end}")

    print(json.dumps(generate(source_db(), scale=args.scale, seed=args.seed, on_chunk=step)))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    report = simulate(
        source_db(),
        minutes=args.minutes,
        seed=seed,
        silent_edits=args.silent_edits,
        deletes=args.deletes,
    )
    print(json.dumps({**report, "seed": seed}))
    return 0
