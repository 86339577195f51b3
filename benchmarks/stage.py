"""Child-process entry of one measured stage: ``python -m benchmarks.stage STAGE CONFIG RESULT``.

CONFIG is a JSON object (databases and lake folders); what the stage measured is written as
JSON to the RESULT file. Not meant to be run by hand: ``python -m benchmarks`` starts it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import db_from_json
from totes.lake import LocalLake


def run(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    # imported here so that each child loads only its own stage's modules
    if stage == "extract":
        from benchmarks.extract import measure_extract

        return measure_extract(db_from_json(config["source"]), Path(config["ingestion"]))
    if stage == "fanout":
        from benchmarks.fanout import measure_fanout

        return measure_fanout(db_from_json(config["source"]), Path(config["ingestion"]))
    if stage == "extract_table":
        from benchmarks.fanout import measure_table

        return measure_table(
            db_from_json(config["source"]),
            Path(config["ingestion"]),
            config["attempt"],
            config["table"],
        )
    if stage == "transform":
        from benchmarks.transform import measure_transform

        return measure_transform(Path(config["ingestion"]), Path(config["processed"]))
    if stage == "load":
        from benchmarks.load import measure_load

        return measure_load(db_from_json(config["warehouse"]), LocalLake(Path(config["processed"])))
    raise SystemExit(f"unknown stage {stage!r}")


def without_pandas() -> None:
    """Make pandas unimportable, as it is in the functions' packages (none of their layers holds
    it). pyarrow imports pandas on its first ``pa.array`` or ``pa.scalar`` when it can find it,
    which in this development environment would add about 0.3 s and 50 MB to every stage that
    the deployed functions never pay."""
    if "pandas" in sys.modules:
        raise RuntimeError("pandas was imported before the stage could leave it out")
    sys.meta_path.insert(0, _NoPandas())


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def main() -> int:
    stage, config, result = sys.argv[1:4]
    without_pandas()
    with contextlib.redirect_stdout(sys.stderr):  # the pipeline's own log lines
        measured = run(stage, json.loads(config))
    Path(result).write_text(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
