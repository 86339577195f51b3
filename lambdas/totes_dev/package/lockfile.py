"""The committed lock's versions as the Lambda runtime sees them (pure).

``requirements-dev.lock`` is a universal resolution: a package may be pinned twice, under
markers for different Pythons or platforms. Evaluating the markers for the Lambda runtime leaves
one version per package, which is what every layer must carry.
"""

from __future__ import annotations

from collections.abc import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from totes_dev.package.plan import PYTHON_VERSION


class LockError(ValueError):
    pass


def lambda_environment(python_full_version: str) -> dict[str, str]:
    """The marker environment of Lambda's python3.12 on x86_64 (Amazon Linux)."""
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full_version,
        "python_version": PYTHON_VERSION,
        "sys_platform": "linux",
    }


def read_lock(text: str, environment: Mapping[str, str]) -> dict[str, str]:
    """name -> version of every pin whose marker holds in ``environment``."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise LockError(f"lock line {number} is not a requirement: {exc}") from None
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise LockError(f"lock line {number} is not an exact pin: {line}")
        if requirement.marker is not None and not requirement.marker.evaluate(dict(environment)):
            continue
        name = canonicalize_name(requirement.name)
        if name in pins and pins[name] != specifiers[0].version:
            raise LockError(f"the lock pins {name} twice for the Lambda runtime")
        pins[name] = specifiers[0].version
    return pins


def check_against_lock(resolved: Mapping[str, str], lock: Mapping[str, str], *, what: str) -> None:
    """Every resolved distribution is the lock's, at the lock's version."""
    problems = []
    for name, version in sorted(resolved.items()):
        if name not in lock:
            problems.append(f"{name} {version} is not in the lock")
        elif lock[name] != version:
            problems.append(f"{name} resolved to {version}, the lock has {lock[name]}")
    if problems:
        raise LockError(f"{what}: " + "; ".join(problems) + " (make lock, then build again)")
