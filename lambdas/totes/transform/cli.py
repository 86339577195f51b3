"""``totes quarantine ...``: see quarantined rows and send them back through the pipeline."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quarantine = subparsers.add_parser("quarantine", help="rows the transform set aside")
    commands = quarantine.add_subparsers(dest="quarantine_command", required=True)

    listing = commands.add_parser("list", help="quarantine objects with their rows and reasons")
    listing.set_defaults(handler=_list)

    replay = commands.add_parser(
        "replay",
        help="land quarantined rows as a new ingestion batch (run between pipeline runs)",
    )
    replay.add_argument("keys", nargs="+", help="quarantine object keys, as `list` prints them")
    replay.set_defaults(handler=_replay)


def _list(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from totes.lake import open_lake, read_parquet
    from totes.settings import processed_lake

    processed = open_lake(processed_lake())
    for key in processed.list("_quarantine/"):
        records = read_parquet(processed, key)
        reasons = pc.value_counts(records.column("reason")).to_pylist()
        print(
            json.dumps(
                {
                    "key": key,
                    "rows": records.num_rows,
                    "reasons": {r["values"]: r["counts"] for r in reasons},
                }
            )
        )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from totes.lake import open_lake
    from totes.settings import ingestion_lake, processed_lake
    from totes.transform.replay import replay

    result = replay(open_lake(ingestion_lake()), open_lake(processed_lake()), args.keys)
    print(json.dumps(result))
    return 0
