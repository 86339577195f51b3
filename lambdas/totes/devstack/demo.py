"""``totes demo``: the whole product on this machine, from an empty stack to a summary.

It brings up the local stack (throwaway PostgreSQL unless PG_* point at a server, and moto for
AWS), creates the totesys source database, fills it with generated data, prints what it made and
tears everything down.
"""

from __future__ import annotations

import argparse
import json
import time

import psycopg

from totes.devstack.postgres import postgres_server, recreate_database
from totes.source.schema import create_schema, row_counts


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="run the product end to end on a local stack")
    demo.add_argument(
        "--scale", type=float, default=1.0, help="generated data scale (1 = real size)"
    )
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from totes.source.generate import generate  # the generator is only needed here

    started = time.monotonic()
    with postgres_server() as admin:
        print(f"PostgreSQL ready at {admin.host}:{admin.port}")
        source = recreate_database(admin, "totesys_demo")
        create_schema(source)
        generate(source, scale=args.scale, seed=args.seed)
        with psycopg.connect(**source.conninfo()) as conn:
            counts = row_counts(conn)
        print(f"Generated totesys source (scale {args.scale:g}, seed {args.seed}):")
        for table, rows in counts.items():
            print(f"  {table:<16}{rows:>10,}")
        print(json.dumps({"source_rows": counts, "seconds": round(time.monotonic() - started, 1)}))
    return 0
