"""``totes check``: reconcile the warehouse with the source.

Exit codes follow ``diff``: 0 the warehouse matches, 1 it differs, 2 it could not be checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.errors import TotesError
from totes.settings import source_db, warehouse_db


class CheckUnavailableError(TotesError):
    step = "check"
    exit_code = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="reconcile the warehouse with the source",
        description="Remodel the source's current rows with the transform's rules and compare "
        "them with the warehouse's dimensions and current fact versions; also look for "
        "duplicated versions, gaps and unresolved references. Exit 0 when the warehouse "
        "matches, 1 when it differs, 2 when it could not check.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        report = check(source_db(), warehouse_db())
    except TotesError as exc:
        raise CheckUnavailableError(f"could not check: {exc}") from None
    if args.json:
        print(json.dumps({"ok": report.ok, **dataclasses.asdict(report)}))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
