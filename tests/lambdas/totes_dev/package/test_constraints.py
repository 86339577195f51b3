"""MWAA's two published version lists become one constraints file; the committed one is what the
command writes, and the development environment runs exactly its versions."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from totes_dev.package import constraints, lockfile
from totes_dev.package.build import Sources
from totes_dev.package.cli import CONSTRAINTS_HEADER, DEFAULT_CONSTRAINTS, main

AIRFLOW = """# a comment, as the published file has
apache-airflow-providers-amazon==9.34.0
numpy==2.5.1

pyarrow==25.0.0
"""
ESSENTIAL = """apache-airflow==3.3.1
# Webserver-related packages
Flask==3.1.3
"""


def _reference(tmp_path: Path, airflow: str = AIRFLOW, essential: str = ESSENTIAL) -> Path:
    (tmp_path / "airflow-constraints-3.12.txt").write_text(airflow, encoding="utf-8")
    (tmp_path / "mwaa-essential-constraints.txt").write_text(essential, encoding="utf-8")
    return tmp_path


def test_the_lists_merge_into_sorted_pins_with_numpy_for_python_312_only(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    code = main(["constraints", "--reference", str(_reference(tmp_path)), "--output", str(out)])
    assert code == 0
    pins = [line for line in out.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    assert pins == [
        "apache-airflow==3.3.1",
        "apache-airflow-providers-amazon==9.34.0",
        "Flask==3.1.3",
        'numpy==2.5.1 ; python_version == "3.12"  # numpy 2.5 needs Python 3.12 or later',
        "pyarrow==25.0.0",
    ]
    # pip and uv read every line as a constraint.
    for line in pins:
        Requirement(line.split("#")[0])


def test_lists_that_disagree_or_are_not_plain_pins_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = _reference(tmp_path, essential="apache-airflow-providers-amazon==9.39.0\n")
    assert (
        main(["constraints", "--reference", str(reference), "--output", str(tmp_path / "x")]) == 1
    )
    assert "disagree on apache-airflow-providers-amazon (9.34.0 and 9.39.0)" in (
        capsys.readouterr().err
    )
    with pytest.raises(constraints.ConstraintsError, match="line 2 is not name==version"):
        constraints.read_pins("a==1\nb>=2\n", source="list")
    with pytest.raises(constraints.ConstraintsError, match=r"(?i)pins b twice"):
        constraints.read_pins("b==1\nB==2\n", source="list")


def test_a_missing_reference_folder_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["constraints", "--reference", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("package: airflow-constraints-3.12.txt not found")
    assert "Traceback" not in err


def test_the_committed_file_is_the_commands_own_output() -> None:
    text = DEFAULT_CONSTRAINTS.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header == [f"# {line}".rstrip() for line in CONSTRAINTS_HEADER]
    pins = constraints.read_pins(
        "\n".join(line.split(";")[0] for line in text.splitlines()), source="committed"
    )
    assert constraints.render(pins, CONSTRAINTS_HEADER) == text
    assert pins["apache-airflow"].version == "3.3.1"
    assert pins["apache-airflow-providers-amazon"].version == "9.34.0"


def test_the_development_environment_runs_mwaas_versions() -> None:
    """The lock is compiled under the constraints and the environment installed from the lock:
    every package of the lock that MWAA pins has MWAA's version here (so the DAG and plugin
    tests run against what MWAA runs)."""
    environment = {k: str(v) for k, v in default_environment().items()}
    lock = lockfile.read_lock(Sources().lock.read_text(encoding="utf-8"), environment)
    mismatched = []
    checked = 0
    for line in DEFAULT_CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line.split("#")[0])
        name = canonicalize_name(requirement.name)
        if name not in lock or (
            requirement.marker is not None and not requirement.marker.evaluate(environment)
        ):
            continue
        checked += 1
        installed = importlib.metadata.version(name)
        if not requirement.specifier.contains(installed, prereleases=True):
            mismatched.append(f"{name} {installed}, MWAA {requirement.specifier}")
    assert not mismatched
    assert checked > 100  # Airflow, its providers and their dependencies
    assert importlib.metadata.version("apache-airflow-providers-amazon") == "9.34.0"
    assert importlib.metadata.version("pyarrow") == "25.0.0"
