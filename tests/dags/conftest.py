"""Airflow in this test process: configured before any test module imports it, with its metadata
database on the test PostgreSQL (created when a test first needs it)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from totes.devstack.airflow import configure_test_process, use_metadata_database
from totes.settings import DbSettings

_HOME = Path(tempfile.mkdtemp(prefix="totes-airflow-test-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
configure_test_process(_HOME)


@pytest.fixture(scope="session")
def airflow_metadata(pg_admin: DbSettings) -> Iterator[DbSettings]:
    yield use_metadata_database(pg_admin, f"totes_airflow_{os.getpid()}")
    from airflow import settings

    settings.dispose_orm(do_log=False)  # before the test PostgreSQL stops
