"""The ``totes`` command line: each area registers its own subcommands; this only wires them.

The product's own subcommands are named here; the development tools add theirs as
``totes.commands`` entry points (see pyproject.toml), so this package never imports them. Only the
module of the command being run is imported, and a product command does not scan every installed
distribution for entry points (about 30 ms of a 0.5 s ``totes run`` with nothing new).

Exit codes: 0 done; 1 failed (one line on stderr naming step, table and key); 2 usage error or,
for ``check``, could not check; 75 another cycle holds the lock (nothing done, try later);
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from totes.errors import TotesError
from totes.observability import send_logs_to_stderr

EPILOG = (
    "exit codes: 0 done, 1 failed, 2 usage error (check: could not check), "
    "75 another cycle holds the lock, 130 interrupted"
)

# Subcommand -> the module whose register(subparsers) adds it.
PRODUCT_COMMANDS = {
    "run": "totes.pipeline",
    "check": "totes.check.cli",
    "warehouse": "totes.load.cli",
    "quarantine": "totes.transform.cli",
    "lock": "totes.lock.cli",
}
PLUGIN_GROUP = "totes.commands"


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("terrific-totes")
        except PackageNotFoundError:  # running from a source tree that was never installed
            found = "unknown"
        print(f"{parser.prog} {found}")
        parser.exit()


def _modules(first: str | None) -> dict[str, str]:
    """The modules to register: only the named command's when it is one of the product's."""
    if first in PRODUCT_COMMANDS:
        return {first: PRODUCT_COMMANDS[first]}
    from importlib.metadata import entry_points

    plugins = {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}
    if first in plugins:
        return {first: plugins[first]}
    return {**plugins, **PRODUCT_COMMANDS}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="totes",
        description="Terrific Totes data platform: totesys -> data lake -> warehouse.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    first = next((arg for arg in (argv or []) if not arg.startswith("-")), None)
    for _, module in sorted(_modules(first).items()):
        importlib.import_module(module).register(subparsers)
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
