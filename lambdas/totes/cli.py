"""The ``totes`` command line: each area registers its own subcommands; this only wires them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from totes.errors import TotesError
from totes.jsonlog import send_logs_to_stderr

# Command name -> module exposing ``register(subparsers)``. Only the module of the command being
# run is imported, so a quick command does not pay for the imports of all the others.
COMMANDS: dict[str, str] = {
    "source": "totes.source.cli",
    "demo": "totes.devstack.demo",
    "warehouse": "totes.warehouse.cli",
    "check": "totes.warehouse.cli",
    "run": "totes.pipeline",
    "quarantine": "totes.transform.cli",
    "lock": "totes.lock.cli",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="totes", description="Terrific Totes data platform")
    subparsers = parser.add_subparsers(dest="command", required=True)
    first = next((arg for arg in (argv or []) if not arg.startswith("-")), None)
    modules = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
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
    finally:
        send_logs_to_stderr(False)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
