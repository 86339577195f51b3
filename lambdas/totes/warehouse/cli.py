"""``totes warehouse migrate|load|rebuild`` and ``totes check``."""

from __future__ import annotations

import argparse
import json

from totes.lake import open_lake
from totes.settings import processed_lake, source_db, warehouse_db
from totes.warehouse.check import check
from totes.warehouse.loader import load_pending
from totes.warehouse.migrations import migrate
from totes.warehouse.rebuild import rebuild
from totes.warehouse.reconcile import format_report


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    warehouse = subparsers.add_parser("warehouse", help="the star-schema warehouse")
    commands = warehouse.add_subparsers(dest="warehouse_command", required=True)
    commands.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        handler=_migrate
    )
    commands.add_parser("load", help="load every pending processed batch").set_defaults(
        handler=_load
    )
    commands.add_parser(
        "rebuild", help="drop the warehouse and replay every processed batch from the lake"
    ).set_defaults(handler=_rebuild)

    subparsers.add_parser(
        "check", help="reconcile the warehouse with the source (exit 1 on differences)"
    ).set_defaults(handler=_check)


def _migrate(args: argparse.Namespace) -> int:
    print(json.dumps({"applied": migrate(warehouse_db())}))
    return 0


def _load(args: argparse.Namespace) -> int:
    db = warehouse_db()
    migrate(db)
    print(json.dumps(load_pending(db, open_lake(processed_lake()))))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    print(json.dumps(rebuild(warehouse_db(), open_lake(processed_lake()))))
    return 0


def _check(args: argparse.Namespace) -> int:
    report = check(source_db(), warehouse_db())
    print(format_report(report))
    return 0 if report.ok else 1
