"""``make bench``: run every stage's benchmark in its own process, one JSON line each."""

from __future__ import annotations

import subprocess
import sys

STAGES = ("benchmarks.extract", "benchmarks.transform", "benchmarks.load")


def main() -> int:
    failed = 0
    for module in STAGES:
        print(f"# {module}", flush=True)
        failed |= subprocess.run(
            [sys.executable, "-m", module, *sys.argv[1:]], check=False
        ).returncode
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
