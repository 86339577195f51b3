"""The Lambda runtime's Python on this machine: the build compiles bytecode with it (a ``.pyc``
is specific to one Python version) and the local stack runs built artifacts in it."""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from totes_dev.package.plan import PYTHON_VERSION

# Look in the development environment's own interpreter first, then PATH, then pyenv's
# versions (pyenv installs them without a shim that works for every version), then uv's.
_VERSION_CHECK = (
    "import sys; print('.'.join(map(str, sys.version_info[:2])), sys.implementation.name)"
)


class InterpreterNotFoundError(RuntimeError):
    pass


def _is_runtime_python(candidate: str) -> bool:
    try:
        result = subprocess.run(
            [candidate, "-I", "-S", "-c", _VERSION_CHECK],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.split() == [PYTHON_VERSION, "cpython"]


def _pyenv_versions() -> list[str]:
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    return sorted(glob.glob(f"{root}/versions/{PYTHON_VERSION}*/bin/python{PYTHON_VERSION}"))


def _uv_managed(uv: str | None) -> list[str]:
    if uv is None:
        return []
    found = subprocess.run(
        [uv, "python", "find", "--managed-python", "--no-python-downloads", PYTHON_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    return [found.stdout.strip()] if found.returncode == 0 and found.stdout.strip() else []


@functools.cache
def runtime_python(uv: str | None = None) -> Path:
    """A CPython of the Lambda runtime's version, not a virtual environment's wrapper (its
    packages must never leak into what runs the artifacts)."""
    candidates: list[str] = []
    if sys.version_info[:2] == tuple(int(p) for p in PYTHON_VERSION.split(".")):
        candidates.append(getattr(sys, "_base_executable", sys.executable))
    for name in (f"python{PYTHON_VERSION}",):
        on_path = shutil.which(name)
        if on_path:
            candidates.append(on_path)
    candidates += _pyenv_versions()
    candidates += _uv_managed(uv)
    for candidate in candidates:
        if _is_runtime_python(candidate):
            return Path(candidate)
    raise InterpreterNotFoundError(
        f"Python {PYTHON_VERSION}, the Lambda runtime's version, is not installed here: install "
        f"it (uv python install {PYTHON_VERSION}, or pyenv install {PYTHON_VERSION}) or put "
        f"python{PYTHON_VERSION} on PATH"
    )


def uv_command() -> str:
    """The uv of the development environment (the Makefile pins its version)."""
    beside = Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise InterpreterNotFoundError("uv is not installed in this environment (make venv)")
    return found
