"""``totes quarantine list | replay``: see quarantined rows and send them back through the
pipeline after the cause is fixed."""

from __future__ import annotations

import argparse
import json

from totes.lock.cli import add_wait_option


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quarantine = subparsers.add_parser(
        "quarantine",
        help="rows the transform set aside",
        description="Rows that broke a transform rule are kept in the processed lake under "
        "_quarantine/, with the reason, instead of being dropped.",
    )
    commands = quarantine.add_subparsers(dest="quarantine_command", required=True)

    listing = commands.add_parser(
        "list",
        help="every quarantined row: table, key, reason",
        description="Print one JSON line per quarantined row: the quarantine object it is in "
        "(the key `replay` takes), the source table, the row's primary key and why it was "
        "set aside.",
    )
    listing.set_defaults(handler=_list)

    replay = commands.add_parser(
        "replay",
        help="land quarantined rows as a new ingestion batch",
        description="Send quarantined rows back through the pipeline as a new ingestion batch, "
        "under the cycle lock. Exits 75 when a cycle holds the lock.",
    )
    replay.add_argument("keys", nargs="+", help="quarantine object keys, as `list` prints them")
    add_wait_option(replay)
    replay.set_defaults(handler=_replay)


def _list(args: argparse.Namespace) -> int:
    from totes.contracts.processed import QUARANTINE_PREFIX
    from totes.lake import open_lake, read_parquet
    from totes.settings import processed_lake

    processed = open_lake(processed_lake())
    for key in processed.list(QUARANTINE_PREFIX):
        records = read_parquet(processed, key).select(["table", "key", "reason"])
        for record in records.to_pylist():
            print(json.dumps({"object": key, **record}))
    return 0


def _replay(args: argparse.Namespace) -> int:
    from totes.lake import open_lake
    from totes.lock.lease import command_holding
    from totes.settings import ingestion_lake, processed_lake
    from totes.transform.replay import replay

    ingestion = open_lake(ingestion_lake())
    with command_holding(ingestion, "totes-replay", args.wait):
        result = replay(ingestion, open_lake(processed_lake()), args.keys)
    print(json.dumps(result))
    return 0
