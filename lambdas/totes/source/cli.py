"""``totes source ...``: manage the totesys source database (create, load, generate, simulate)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from totes.db import connect
from totes.errors import SourceError
from totes.settings import source_db
from totes.source.generate import generate
from totes.source.schema import create_schema, has_schema, row_counts
from totes.source.snapshots import load_snapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = subparsers.add_parser("source", help="the totesys source database")
    commands = source.add_subparsers(dest="source_command", required=True)

    create = commands.add_parser("create", help="create the real totesys schema in PG_DATABASE")
    create.set_defaults(handler=_create)

    counts = commands.add_parser("counts", help="print rows per table as JSON")
    counts.set_defaults(handler=_counts)

    load = commands.add_parser(
        "load",
        help="load a real snapshot (pg_dump or Parquet folder), upserting rows by primary key",
    )
    load.add_argument("--snapshot", type=Path, required=True, help="snapshot folder or dump")
    load.set_defaults(handler=_load)

    gen = commands.add_parser("generate", help="fill an empty database with synthetic data")
    gen.add_argument("--scale", type=float, default=1.0, help="1 = the real 2024-11-15 volume")
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(handler=_generate)


def _create(args: argparse.Namespace) -> int:
    create_schema(source_db())
    return 0


def _counts(args: argparse.Namespace) -> int:
    with connect(source_db(), error=SourceError, role="source") as conn:
        print(json.dumps(row_counts(conn)))
    return 0


def _ensure_schema() -> None:
    """Create the schema in an empty database, so one command fills a fresh database."""
    with connect(source_db(), error=SourceError, role="source") as conn:
        present = has_schema(conn)
    if not present:
        create_schema(source_db())


def _load(args: argparse.Namespace) -> int:
    _ensure_schema()
    print(json.dumps(load_snapshot(source_db(), args.snapshot)))
    return 0


def _generate(args: argparse.Namespace) -> int:
    _ensure_schema()
    print(json.dumps(generate(source_db(), scale=args.scale, seed=args.seed)))
    return 0
