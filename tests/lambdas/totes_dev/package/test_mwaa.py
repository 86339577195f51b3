"""MWAA parity: the built ``requirements.txt`` installs under MWAA's pins into a fresh Python 3.12
environment holding what MWAA's image holds, ``plugins.zip`` goes where MWAA unpacks it, and
Airflow parses ``dags/`` there with no import error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from totes_dev.package import zips
from totes_dev.package.build import REPO_ROOT, Sources, build_mwaa
from totes_dev.package.cli import DEFAULT_CONSTRAINTS
from totes_dev.package.interpreter import runtime_python, uv_command

pytestmark = pytest.mark.xdist_group("mwaa")

CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"
)
# What MWAA's Airflow 3.3.1 image installs before a customer's requirements (requirements.txt
# says which of them the DAG relies on).
IMAGE = (
    "apache-airflow==3.3.1",
    "apache-airflow-providers-amazon",
    "apache-airflow-providers-postgres",
)

PARSE = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import version
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1])
    import totes.naming
    import totes_airflow
    print(json.dumps({
        "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
        "dag_ids": sorted(bag.dag_ids),
        "naming": totes.naming.__file__,
        "plugins": totes_airflow.__file__,
        "versions": {name: version(name) for name in (
            "apache-airflow", "apache-airflow-providers-amazon",
            "apache-airflow-providers-postgres", "apache-airflow-providers-common-sql", "boto3")},
    }))
    """
)


def _pins() -> dict[str, str]:
    pins = {}
    for line in DEFAULT_CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line.split("#")[0])
            pins[requirement.name.lower()] = str(requirement.specifier).removeprefix("==")
    return pins


def _uv(*args: str) -> None:
    result = subprocess.run(
        [uv_command(), *args, "--no-config", "--no-python-downloads", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_requirements_point_mwaa_at_the_constraints_the_project_keeps() -> None:
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == f'--constraint "{CONSTRAINTS_URL}"'
    assert CONSTRAINTS_URL in DEFAULT_CONSTRAINTS.read_text(encoding="utf-8")


@pytest.mark.slow
def test_dags_parse_on_mwaas_versions_with_the_built_plugins(tmp_path: Path) -> None:
    built = build_mwaa(Sources(), tmp_path / "build")
    # The constraints URL cannot be fetched everywhere the tests run; the project's copy of it
    # takes its place, and every other line of requirements.txt stays as MWAA reads it.
    requirements = built.requirements.read_text(encoding="utf-8")
    local = re.sub(
        r'^--constraint "[^"]+"$',
        f'--constraint "{DEFAULT_CONSTRAINTS}"',
        requirements,
        count=1,
        flags=re.MULTILINE,
    )
    assert local != requirements
    (tmp_path / "requirements.txt").write_text(local, encoding="utf-8")

    env = tmp_path / "mwaa-python"
    python = env / "bin" / "python"
    _uv("venv", "--python", str(runtime_python(uv_command())), str(env))
    _uv("pip", "install", "--python", str(python), "-c", str(DEFAULT_CONSTRAINTS), *IMAGE)
    _uv("pip", "install", "--python", str(python), "-r", str(tmp_path / "requirements.txt"))

    # MWAA unpacks plugins.zip into $AIRFLOW_HOME/plugins, which Airflow puts on sys.path.
    home = tmp_path / "airflow"
    zips.extract(built.plugins_zip, home / "plugins")
    result = subprocess.run(
        [str(python), "-c", PARSE, str(built.dags)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(built.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == ["totes_pipeline"]
    # The DAG found our modules in the unpacked plugins.zip, not in this checkout.
    assert Path(parsed["naming"]).is_relative_to(home / "plugins")
    assert Path(parsed["plugins"]).is_relative_to(home / "plugins")
    pins = _pins()
    assert parsed["versions"] == {name: pins[name] for name in parsed["versions"]}
