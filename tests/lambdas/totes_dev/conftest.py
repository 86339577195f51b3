"""The deployable artifacts, built once per test worker exactly as ``make package`` builds them
(into a temporary folder, never the checkout's build/), and the local runtime that runs them.

Tests that use them carry ``xdist_group("artifacts")``, so one worker builds them for all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from totes_dev.devstack.lambda_runtime import ArtifactRuntime
from totes_dev.package.build import Report, build
from totes_dev.package.manifest import Manifest

ARTIFACTS_GROUP = "artifacts"


@pytest.fixture(scope="session")
def built_with_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Report]:
    return build(tmp_path_factory.mktemp("package") / "build")


@pytest.fixture(scope="session")
def built(built_with_report: tuple[Manifest, Report]) -> Manifest:
    return built_with_report[0]


@pytest.fixture(scope="session")
def artifact_runtime(built: Manifest) -> Iterator[ArtifactRuntime]:
    with ArtifactRuntime(built) as runtime:
        yield runtime
