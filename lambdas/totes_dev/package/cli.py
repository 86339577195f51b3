"""``python -m totes_dev.package``: build the deployable artifacts (``make package``), measure
their cold starts, and refresh the committed copy of MWAA's version pins.

Exit codes: 0 done; 1 the build or a measurement failed (one message says why); 2 usage error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from totes_dev.package import constraints, lockfile, manifest, plan
from totes_dev.package.build import REPO_ROOT, BuildError, build, summary
from totes_dev.package.interpreter import InterpreterNotFoundError

DEFAULT_OUTPUT = REPO_ROOT / "build"
DEFAULT_CONSTRAINTS = REPO_ROOT / "constraints" / "mwaa-3.3.1.txt"
AIRFLOW_CONSTRAINTS = "airflow-constraints-3.12.txt"
MWAA_ESSENTIAL = "mwaa-essential-constraints.txt"

CONSTRAINTS_HEADER = (
    "What Amazon MWAA's Airflow 3.3.1 image installs on Python 3.12, as constraints for the",
    "development lock (requirements-dev.in) and the MWAA parity test. Two published lists:",
    "  Airflow's constraints for 3.3.1 on Python 3.12, the file requirements.txt points MWAA at:",
    "    https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt",
    "  MWAA's own pins, which a customer cannot override: aws/amazon-mwaa-docker-images,",
    "    images/airflow/3.3.1/etc/mwaa-essential-constraints.txt",
    "Versions only. Written by: python -m totes_dev.package constraints --reference DIR",
    "(DIR holding airflow-constraints-3.12.txt and mwaa-essential-constraints.txt). Do not edit.",
    "",
)


def _build(args: argparse.Namespace) -> int:
    built, report = build(args.output)
    print(summary(built, report))
    print(f"manifest: {built.path}")
    return 0


def _constraints(args: argparse.Namespace) -> int:
    reference: Path = args.reference
    try:
        airflow = constraints.read_pins(
            (reference / AIRFLOW_CONSTRAINTS).read_text(encoding="utf-8"),
            source=AIRFLOW_CONSTRAINTS,
        )
        essential = constraints.read_pins(
            (reference / MWAA_ESSENTIAL).read_text(encoding="utf-8"), source=MWAA_ESSENTIAL
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{Path(str(exc.filename)).name} not found in {reference}") from None
    pins = constraints.merge(airflow, essential)
    args.output.write_text(constraints.render(pins, CONSTRAINTS_HEADER), encoding="utf-8")
    print(f"{len(pins)} pins written to {args.output.name}")
    return 0


def _coldstart(args: argparse.Namespace) -> int:
    from totes_dev.devstack.aws import FunctionError
    from totes_dev.devstack.lambda_runtime import ArtifactRuntime

    built = manifest.load(args.manifest, REPO_ROOT)
    with ArtifactRuntime(built) as runtime:
        print(f"{'function':<10} {'init (import) ms':>18} {'process ms':>12}   ({args.runs} runs)")
        for name in built.functions:
            try:
                runs = [runtime.cold_start(name) for _ in range(args.runs)]
            except FunctionError as exc:
                raise BuildError(f"{name} does not start from its artifact: {exc}") from None
            init = statistics.median(r.init_ms for r in runs)
            process = statistics.median(r.process_ms for r in runs)
            print(f"{name:<10} {init:>18.0f} {process:>12.0f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m totes_dev.package",
        description="Deployable artifacts: Lambda code zips and layers, plugins.zip, "
        "requirements.txt and the manifest Terraform reads.",
        epilog="exit codes: 0 done, 1 failed, 2 usage error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = commands.add_parser(
        "build",
        help="build every artifact and artifacts.json (make package)",
        description="Build each function's code zip, the dependency layers (the lock's "
        "versions, manylinux wheels for Lambda's python3.12 on x86_64), plugins.zip and "
        "requirements.txt, check them against Lambda's limits and write artifacts.json. "
        "Progress on stderr; the sizes and margins on stdout.",
    )
    b.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: build/")
    b.set_defaults(handler=_build)

    c = commands.add_parser(
        "coldstart",
        help="measure each handler's cold start from its built artifact",
        description="Start each function from its artifact in a fresh Python process, as "
        "Lambda does on a cold start, and print the median time to import its handler and of "
        "the whole process.",
    )
    c.add_argument(
        "--manifest",
        type=Path,
        default=DEFAULT_OUTPUT / manifest.NAME,
        help="default: build/artifacts.json",
    )
    c.add_argument("--runs", type=int, default=5, help="starts per function (default 5)")
    c.set_defaults(handler=_coldstart)

    k = commands.add_parser(
        "constraints",
        help="rewrite constraints/mwaa-3.3.1.txt from MWAA's published version lists",
        description="Merge Airflow's constraints file and MWAA's essential pins (both as MWAA "
        "publishes them) into the project's constraints file.",
    )
    k.add_argument(
        "--reference",
        type=Path,
        required=True,
        help=f"folder holding {AIRFLOW_CONSTRAINTS} and {MWAA_ESSENTIAL}",
    )
    k.add_argument("--output", type=Path, default=DEFAULT_CONSTRAINTS, help=argparse.SUPPRESS)
    k.set_defaults(handler=_constraints)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (
        BuildError,
        InterpreterNotFoundError,
        constraints.ConstraintsError,
        lockfile.LockError,
        manifest.ManifestError,
        plan.PlanError,
    ) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("package: interrupted", file=sys.stderr)
        return 130
