"""The versions MWAA installs, as a constraints file the project keeps (pure: text in, text out).

MWAA installs Airflow, its providers and every customer requirement under Airflow's constraints
file for its Airflow and Python versions, and it also enforces a short list of pins of its own
that a customer cannot override. ``requirements.txt`` points MWAA at the constraints URL; the
development lock and the MWAA parity test need the same versions without that URL (these
machines cannot fetch it), so this module turns the two published lists into one committed
constraints file. Only versions are kept: a version list is a fact about the target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.utils import canonicalize_name

# Pins that cannot hold on every Python the development environment supports: they apply on
# the Python MWAA runs, and the other versions resolve their own.
PYTHON_ONLY: Mapping[str, tuple[str, str]] = {
    "numpy": ("3.12", "numpy 2.5 needs Python 3.12 or later"),
}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)$")


class ConstraintsError(ValueError):
    """A published list is not a plain list of ``name==version`` pins, or the two disagree."""


@dataclass(frozen=True)
class Pin:
    name: str  # as published
    version: str

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


def read_pins(text: str, *, source: str) -> dict[str, Pin]:
    """Every ``name==version`` line of a published list, by canonical name; comments and blank
    lines are skipped, anything else is refused so that no pin is silently dropped."""
    pins: dict[str, Pin] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise ConstraintsError(f"{source} line {number} is not name==version: {line!r}")
        pin = Pin(match["name"], match["version"])
        known = pins.get(pin.key)
        if known is not None and known.version != pin.version:
            raise ConstraintsError(
                f"{source} pins {pin.name} twice: {known.version} and {pin.version}"
            )
        pins[pin.key] = pin
    return pins


def merge(airflow: Mapping[str, Pin], essential: Mapping[str, Pin]) -> dict[str, Pin]:
    """Both lists as one; they must agree wherever both pin a package (MWAA installs both)."""
    conflicts = [
        f"{pin.name} ({airflow[key].version} and {pin.version})"
        for key, pin in essential.items()
        if key in airflow and airflow[key].version != pin.version
    ]
    if conflicts:
        raise ConstraintsError(
            "the Airflow constraints and MWAA's own pins disagree on " + ", ".join(conflicts)
        )
    return {**airflow, **essential}


def render(pins: Mapping[str, Pin], header: Iterable[str]) -> str:
    """The constraints file: the header as comments, then one sorted pin per line, with a
    Python marker where :data:`PYTHON_ONLY` says so."""
    lines = [f"# {line}".rstrip() for line in header]
    for key in sorted(pins):
        pin = pins[key]
        line = f"{pin.name}=={pin.version}"
        if key in PYTHON_ONLY:
            python, why = PYTHON_ONLY[key]
            line += f' ; python_version == "{python}"  # {why}'
        lines.append(line)
    return "\n".join(lines) + "\n"
