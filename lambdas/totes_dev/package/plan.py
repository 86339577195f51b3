"""What is built: the Lambda runtime, the layers and which function takes which, and what is
trimmed from the installed wheels. Pure data and checks; the build carries it out.

Why these layers (docs/packaging.md): one layer per group of dependencies that some function can
do without, so the lock needs none of Arrow's 150 MB and the transform none of PostgreSQL's
driver; shared layers are built and uploaded once for all the functions that take them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The Lambda runtime. x86_64 because the very same files then run on the build and test
# machines, so what the tests import is byte for byte what Lambda imports (arm64 would be about
# 20 % cheaper per GB-second, but could only be tested on arm64 hardware).
RUNTIME = "python3.12"
PYTHON_VERSION = "3.12"
ARCHITECTURE = "x86_64"
# python3.12 runs on Amazon Linux 2023, whose glibc is 2.34: any manylinux wheel up to 2_34 loads.
PYTHON_PLATFORM = "x86_64-manylinux_2_34"
# Where Lambda puts the code and the layers; compiled files name their sources there.
TASK_ROOT = "/var/task"
LAYER_ROOT = "/opt"
LAYER_PREFIX = "python/"  # a Python layer's packages live under python/ in its zip

# Lambda's limit on a function's code and all its layers, unzipped (250 MB, as AWS counts them).
UNZIPPED_LIMIT = 262_144_000
# The largest zip Lambda takes in a direct upload; larger ones must come from S3, as Terraform's
# pipeline module already uploads every artifact.
DIRECT_UPLOAD_LIMIT = 52_428_800


@dataclass(frozen=True)
class Layer:
    name: str
    requirements: tuple[str, ...]  # as in pyproject.toml's dependencies
    why: str


# In order: a layer leaves out what an earlier layer of every function taking it already holds.
LAYERS: tuple[Layer, ...] = (
    Layer("aws", ("boto3", "aws-lambda-powertools"), "the AWS SDK and Powertools: every function"),
    Layer("arrow", ("pyarrow", "numpy"), "Parquet and Arrow compute; numpy for the extract's diff"),
    Layer(
        "postgres",
        ("psycopg[binary]", "adbc-driver-postgresql"),
        "the PostgreSQL drivers, each with its own libpq: psycopg, and ADBC for the extract's rows",
    ),
)


@dataclass(frozen=True)
class Function:
    name: str
    handler: str
    layers: tuple[str, ...]


FUNCTIONS: tuple[Function, ...] = (
    Function("extract", "totes.extract.handler.lambda_handler", ("aws", "arrow", "postgres")),
    Function("transform", "totes.transform.handler.lambda_handler", ("aws", "arrow")),
    Function("load", "totes.load.handler.lambda_handler", ("aws", "arrow", "postgres")),
    # The lock reads and writes small JSON records: totes.lake imports pyarrow only for Parquet.
    Function("lock", "totes.lock.handler.lambda_handler", ("aws",)),
)


@dataclass(frozen=True)
class Trim:
    """Files of the installed wheels that never run on Lambda, removed before zipping."""

    patterns: tuple[str, ...]  # fnmatch patterns on paths relative to the layer's python/
    why: str


TRIMS: tuple[Trim, ...] = (
    Trim(("bin/*",), "console scripts (f2py, numpy-config, jp.py): nothing runs them"),
    Trim(("*.pyi", "*/py.typed"), "type stubs, read by type checkers only"),
    Trim(("*/tests/*", "pyarrow/_pyarrow_cpp_tests.*"), "the libraries' own test suites"),
    Trim(
        ("*.pyx", "*.pxd", "*.pxi", "pyarrow/include/*", "pyarrow/src/*", "numpy/_core/include/*"),
        "C, C++ and Cython sources and headers, for compiling extensions against the library",
    ),
    Trim(
        ("numpy/_core/lib/*", "numpy/random/lib/*", "numpy/f2py/*", "numpy/_pyinstaller/*"),
        "static libraries, pkg-config files, the Fortran wrapper generator, PyInstaller hooks",
    ),
    Trim(
        ("pyarrow/libarrow*.so", "pyarrow/libarrow*.so.*.*.*"),
        "second and third copies of libarrow_python*: wheels cannot hold symbolic links, so the "
        "link-time names are full copies; only the versioned name (lib*.so.2500) is loaded",
    ),
    Trim(
        ("pyarrow/*flight*",),
        "Arrow Flight (RPC over gRPC, 30 MB): no code path uses it and nothing else links it",
    ),
)


# Shared libraries whose wheels ship their debug information, which only a debugger reads:
# binutils' ``strip --strip-debug`` removes it and leaves the code and symbols as they are.
# ADBC's driver manager is 14 MB with it and 1.3 MB without.
DEBUG_INFO = Trim(
    ("adbc_driver_manager/_lib.*.so",),
    "debug information in ADBC's driver manager, which only a debugger reads",
)


def _matches(path: str, rule: Trim) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in rule.patterns)


def trimmed(path: str) -> Trim | None:
    """The rule that removes ``path`` (relative to python/), if any."""
    for rule in TRIMS:
        if _matches(path, rule):
            return rule
    return None


def debug_stripped(path: str) -> bool:
    """Whether ``path`` (relative to python/) loses its debug information (:data:`DEBUG_INFO`)."""
    return _matches(path, DEBUG_INFO)


class PlanError(ValueError):
    """The layers do not fit the functions or the project's dependencies."""


def requirement_names(requirements: Sequence[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def check_layers_cover(dependencies: Sequence[str]) -> None:
    """The layers together take exactly the project's runtime dependencies, each once."""
    declared = requirement_names(dependencies)
    seen: dict[str, str] = {}
    for layer in LAYERS:
        for name in requirement_names(layer.requirements):
            if name in seen:
                raise PlanError(f"{name} is in both the {seen[name]} and {layer.name} layers")
            seen[name] = layer.name
    missing, extra = declared - set(seen), set(seen) - declared
    if missing or extra:
        raise PlanError(
            "the layers must take exactly pyproject.toml's dependencies: "
            + "; ".join(
                part
                for part in (
                    f"not in any layer: {', '.join(sorted(missing))}" if missing else "",
                    f"not a dependency: {', '.join(sorted(extra))}" if extra else "",
                )
                if part
            )
        )


def companions(layer: str) -> set[str]:
    """The layers every function taking ``layer`` also takes, earlier in :data:`LAYERS`."""
    order = [item.name for item in LAYERS]
    taking = [set(f.layers) for f in FUNCTIONS if layer in f.layers]
    always = set.intersection(*taking) if taking else set()
    return {name for name in always if order.index(name) < order.index(layer)}


def layer_packages(closures: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Each layer's distributions (name -> version): the closure of its requirements, less what
    an earlier layer of every function taking it already holds (typing-extensions, needed by
    psycopg and Powertools alike, goes in the aws layer only)."""
    chosen: dict[str, dict[str, str]] = {}
    for layer in LAYERS:
        held = {name for other in companions(layer.name) for name in chosen[other]}
        chosen[layer.name] = {
            name: version for name, version in closures[layer.name].items() if name not in held
        }
    return chosen


def check_functions(
    closures: Mapping[str, Mapping[str, str]], packages: Mapping[str, Mapping[str, str]]
) -> None:
    """Every function's layers hold, between them and without overlap, all of what their
    requirements need."""
    for function in FUNCTIONS:
        needed = {n for layer in function.layers for n in closures[layer]}
        held: dict[str, str] = {}
        for layer in function.layers:
            for name in packages[layer]:
                if name in held:
                    raise PlanError(
                        f"{function.name}: {name} is in both the {held[name]} and {layer} layers"
                    )
                held[name] = layer
        if needed - set(held):
            raise PlanError(
                f"{function.name}: its layers lack {', '.join(sorted(needed - set(held)))}"
            )
