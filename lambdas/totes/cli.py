"""The ``totes`` command line: each area registers its own subcommands; this only wires them.

Subcommands are the ``totes.commands`` entry points (see pyproject.toml), so the development
tools can add theirs without this package importing them, and only the module of the command
being run is imported: a quick command does not pay for the imports of all the others.

Exit codes: 0 done; 1 failed (one line on stderr naming step, table and key); 2 usage error or,
for ``check``, could not check; 75 another cycle holds the lock (nothing done, try later);
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version

from totes.errors import TotesError
from totes.observability import send_logs_to_stderr

EPILOG = (
    "exit codes: 0 done, 1 failed, 2 usage error (check: could not check), "
    "75 another cycle holds the lock, 130 interrupted"
)


def _version() -> str:
    try:
        return version("terrific-totes")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="totes",
        description="Terrific Totes data platform: totesys -> data lake -> warehouse.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {point.name: point for point in entry_points(group="totes.commands")}
    first = next((arg for arg in (argv or []) if not arg.startswith("-")), None)
    chosen = [commands[first]] if first in commands else sorted(commands.values())
    for point in chosen:
        point.load().register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    send_logs_to_stderr()
    try:
        result = args.handler(args)
    except TotesError as exc:
        print(f"totes: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("totes: interrupted", file=sys.stderr)
        return 130
    finally:
        send_logs_to_stderr(False)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
