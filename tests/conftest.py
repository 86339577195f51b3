"""Shared test fixtures: a real PostgreSQL server and a real moto server over HTTP.

Both start by themselves: PostgreSQL is the one the PG_* variables name, else a throwaway cluster;
moto runs in this process so that Lambda invocations reach our handlers.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from totes.devstack.aws import REGION, MotoStack, start_moto
from totes.devstack.postgres import postgres_server, recreate_database
from totes.lake import LocalLake, S3Lake
from totes.settings import DbSettings, snapshot_root

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[DbSettings]:
    with postgres_server() as admin:
        yield admin


@pytest.fixture
def new_database(pg_admin: DbSettings, worker_id: str) -> Callable[[str], DbSettings]:
    """Factory of empty databases, unique per test worker, on the test server."""

    def make(role: str) -> DbSettings:
        return recreate_database(pg_admin, f"totes_{role}_{worker_id}_{next(_db_counter)}")

    return make


@pytest.fixture(scope="session")
def moto_stack() -> Iterator[MotoStack]:
    saved = dict(os.environ)
    stack = start_moto()
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def s3_bucket(moto_stack: MotoStack) -> str:
    """A fresh bucket on the moto server, so tests never see each other's objects."""
    name = f"totes-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return name


@pytest.fixture
def s3_lake(s3_bucket: str) -> S3Lake:
    return S3Lake(s3_bucket, "lake")


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


@pytest.fixture(scope="session")
def snapshots() -> Path:
    root = snapshot_root()
    if not (root / "snapshot-2024-11-15").is_dir():
        pytest.fail(f"real snapshots not found under {root}; set TOTES_SNAPSHOT_ROOT")
    return root
