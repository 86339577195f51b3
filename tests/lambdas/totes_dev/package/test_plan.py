"""The layer plan: every runtime dependency in one layer, each function's layers complete and
disjoint, and the trim rules removing only what never loads."""

from __future__ import annotations

import pytest

from totes_dev.devstack.deploy import HANDLERS
from totes_dev.package import plan
from totes_dev.package.build import Sources


def test_the_layers_take_exactly_pyprojects_runtime_dependencies() -> None:
    plan.check_layers_cover(Sources().dependencies())
    with pytest.raises(plan.PlanError, match="not in any layer: pandas"):
        plan.check_layers_cover([*Sources().dependencies(), "pandas"])


def test_functions_are_the_local_stacks_and_terraforms() -> None:
    assert {f.name: f.handler for f in plan.FUNCTIONS} == HANDLERS


def test_a_package_two_layers_need_goes_in_the_one_every_function_takes() -> None:
    closures = {
        "aws": {"boto3": "1", "typing-extensions": "4"},
        "arrow": {"pyarrow": "25", "numpy": "2"},
        "postgres": {"psycopg": "3", "typing-extensions": "4"},
    }
    packages = plan.layer_packages(closures)
    assert packages["postgres"] == {"psycopg": "3"}
    assert packages["aws"] == {"boto3": "1", "typing-extensions": "4"}
    plan.check_functions(closures, packages)
    with pytest.raises(plan.PlanError, match="extract: its layers lack typing-extensions"):
        plan.check_functions(closures, {**packages, "aws": {"boto3": "1"}})


@pytest.mark.parametrize(
    ("path", "removed"),
    [
        ("pyarrow/libarrow_flight.so.2500", True),
        ("pyarrow/_flight.cpython-312-x86_64-linux-gnu.so", True),
        ("pyarrow/libarrow_python.so", True),
        ("pyarrow/libarrow_python.so.2500.0.0", True),
        ("pyarrow/include/arrow/api.h", True),
        ("numpy/_core/tests/test_api.py", True),
        ("numpy/__init__.pyi", True),
        ("bin/f2py", True),
        ("pyarrow/lib.cpython-312-x86_64-linux-gnu.so", False),
        ("pyarrow/libarrow_python.so.2500", False),
        ("pyarrow/libarrow.so.2500", False),
        ("pyarrow/parquet/core.py", False),
        ("numpy/testing/__init__.py", False),
        ("botocore/data/s3/2006-03-01/service-2.json.gz", False),
    ],
)
def test_trim_rules(path: str, removed: bool) -> None:
    assert (plan.trimmed(path) is not None) is removed


def test_only_adbcs_driver_manager_is_stripped_of_debug_information() -> None:
    assert plan.debug_stripped("adbc_driver_manager/_lib.cpython-312-x86_64-linux-gnu.so")
    assert not plan.debug_stripped("adbc_driver_postgresql/libadbc_driver_postgresql.so")
    assert not plan.debug_stripped("pyarrow/libarrow.so.2500")
    assert plan.trimmed("adbc_driver_manager/_lib.cpython-312-x86_64-linux-gnu.so") is None
