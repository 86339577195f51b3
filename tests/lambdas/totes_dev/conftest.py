"""The deployable artifacts, built once per test worker exactly as ``make package`` builds them
(into a temporary folder, never the checkout's build/).

Tests that use them carry ``xdist_group("artifacts")``, so one worker builds them for all.
"""

from __future__ import annotations

import pytest
from totes_dev.package.build import Report, build
from totes_dev.package.manifest import Manifest

ARTIFACTS_GROUP = "artifacts"


@pytest.fixture(scope="session")
def built_with_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Report]:
    return build(tmp_path_factory.mktemp("package") / "build")


@pytest.fixture(scope="session")
def built(built_with_report: tuple[Manifest, Report]) -> Manifest:
    return built_with_report[0]
