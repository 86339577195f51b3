"""``totes warehouse migrate | load | rebuild``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from totes.errors import TotesError
from totes.lake import open_lake
from totes.load.loader import load_pending
from totes.load.migrations import migrate
from totes.load.rebuild import rebuild
from totes.progress import Progress
from totes.settings import processed_lake, warehouse_db


class RebuildNotConfirmedError(TotesError):
    step = "rebuild"
    exit_code = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    warehouse = subparsers.add_parser(
        "warehouse",
        help="the star-schema warehouse",
        description="Migrate the warehouse schema, load pending processed batches, or rebuild "
        "the warehouse from the processed lake.",
    )
    commands = warehouse.add_subparsers(dest="warehouse_command", required=True)
    commands.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply the schema migrations the warehouse lacks; print their versions.",
    ).set_defaults(handler=_migrate)
    commands.add_parser(
        "load",
        help="load every pending processed batch",
        description="Migrate, then load every committed processed batch the warehouse does not "
        "hold yet, in sequence order, one transaction each; progress on stderr.",
    ).set_defaults(handler=_load)
    rebuild_parser = commands.add_parser(
        "rebuild",
        help="drop the warehouse and replay every processed batch from the lake",
        description="Drop every warehouse table and replay the processed lake batch by batch. "
        "The lake is the system of record, so the result is the same row for row, record ids "
        "included. Asks for confirmation on a terminal; elsewhere it needs --yes.",
    )
    rebuild_parser.add_argument(
        "--yes", action="store_true", help="do not ask: drop and rebuild the warehouse"
    )
    rebuild_parser.set_defaults(handler=_rebuild)


def _migrate(args: argparse.Namespace) -> int:
    print(json.dumps({"applied": migrate(warehouse_db())}))
    return 0


def _load(args: argparse.Namespace) -> int:
    db = warehouse_db()
    migrate(db)
    summary = load_pending(db, open_lake(processed_lake()), on_batch=_progress("loading batches"))
    print(json.dumps(summary))
    return 0


def _progress(label: str) -> Callable[[int, str], None]:
    """A batch-by-batch progress report on stderr, for ``on_batch``."""
    progress = Progress(label, None)

    def step(total: int, batch_id: str) -> None:
        progress.total = total
        progress.advance(batch_id)

    return step


def _confirmed(args: argparse.Namespace, target: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise RebuildNotConfirmedError(f"rebuild drops every table of {target}; run it with --yes")
    print(
        f"This drops every table of {target} and replays the lake. Type 'rebuild': ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    if sys.stdin.readline().strip() != "rebuild":
        raise RebuildNotConfirmedError("not confirmed; nothing was dropped")


def _rebuild(args: argparse.Namespace) -> int:
    db = warehouse_db()
    _confirmed(args, f"the warehouse {db.describe()}")
    summary = rebuild(db, open_lake(processed_lake()), on_batch=_progress("replaying batches"))
    print(json.dumps(summary))
    return 0
