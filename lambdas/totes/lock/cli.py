"""``totes lock status | break``: who holds the cycle lock, and releasing a lock whose holder is
known to be gone (a killed process, before its lease lapses)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from totes.lake import open_lake
from totes.lock.lease import CycleLock, command_holder
from totes.settings import ingestion_lake


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` of the commands that take the cycle lock."""
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when another cycle is running, wait up to this long for it (default: 0)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lock = subparsers.add_parser(
        "lock",
        help="the cycle lock: who holds it; release it",
        description="The cycle lock serialises cycles (Step Functions executions, `totes run`, "
        "`totes quarantine replay`). Its records live in the ingestion lake under _leases/.",
    )
    commands = lock.add_subparsers(dest="lock_command", required=True)
    status = commands.add_parser(
        "status",
        help="print who holds the lock, as JSON",
        description="Print who holds the cycle lock (or released it last) and until when, as "
        "one JSON line.",
    )
    status.set_defaults(handler=_status)
    breaking = commands.add_parser(
        "break",
        help="release the lock whoever holds it",
        description="Release the cycle lock on behalf of a holder that is gone. Safe for the "
        "data (every commit is one-winner by sequence), but a live holder would then overlap "
        "with the next cycle, so it needs --yes.",
    )
    breaking.add_argument("--yes", action="store_true", help="confirm breaking the lock")
    breaking.set_defaults(handler=_break)


def _lock() -> CycleLock:
    return CycleLock(open_lake(ingestion_lake()))


def _status(args: argparse.Namespace) -> int:
    record = _lock().current()
    if record is None:
        print(json.dumps({"held": False, "holder": None}))
        return 0
    print(json.dumps({"held": record.active(datetime.now(UTC)), **record.to_json()}))
    return 0


def _break(args: argparse.Namespace) -> int:
    if not args.yes:
        print("totes: lock break needs --yes (see `totes lock break --help`)", file=sys.stderr)
        return 2
    broken = _lock().break_lock(by=command_holder("totes-lock-break"))
    print(json.dumps({"broken": broken is not None, "holder": broken.holder if broken else None}))
    return 0
