"""The ``totes`` command line: each area registers its own subcommands; this only wires them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from totes.errors import TotesError

# Modules exposing ``register(subparsers)``; each adds its subcommands with a ``handler`` default.
COMMAND_MODULES = (
    "totes.source.cli",
    "totes.devstack.demo",
    "totes.warehouse.cli",
    "totes.pipeline",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="totes", description="Terrific Totes data platform")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except TotesError as exc:
        print(f"totes: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
