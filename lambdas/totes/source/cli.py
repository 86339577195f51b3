"""``totes source ...``: manage the totesys source database (create, load, generate, simulate)."""

from __future__ import annotations

import argparse
import json

from totes.db import connect
from totes.errors import SourceError
from totes.settings import source_db
from totes.source.schema import create_schema, row_counts


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = subparsers.add_parser("source", help="the totesys source database")
    commands = source.add_subparsers(dest="source_command", required=True)

    create = commands.add_parser("create", help="create the real totesys schema in PG_DATABASE")
    create.set_defaults(handler=_create)

    counts = commands.add_parser("counts", help="print rows per table as JSON")
    counts.set_defaults(handler=_counts)


def _create(args: argparse.Namespace) -> int:
    create_schema(source_db())
    return 0


def _counts(args: argparse.Namespace) -> int:
    with connect(source_db(), error=SourceError, role="source") as conn:
        print(json.dumps(row_counts(conn)))
    return 0
