"""Shared test fixtures: a real PostgreSQL server and a real moto server over HTTP.

Both start by themselves: PostgreSQL is the one the PG_* variables name, else a throwaway cluster;
moto runs in this process so that Lambda invocations reach our handlers.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from totes.lake import LocalLake, S3Lake
from totes.runtime import reset_container
from totes.settings import DbSettings
from totes_dev.devstack.airflow import configure_test_process, use_metadata_database
from totes_dev.devstack.aws import REGION, MotoStack, start_moto
from totes_dev.devstack.postgres import postgres_server, recreate_database
from totes_dev.source.formats import snapshot_root

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[DbSettings]:
    with postgres_server() as admin:
        yield admin


@pytest.fixture
def new_database(pg_admin: DbSettings) -> Callable[[str], DbSettings]:
    """Factory of empty databases, unique per test worker, on the test server."""
    worker_id = os.environ.get("PYTEST_XDIST_WORKER", "main")

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
def spools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder temporary files and folders go to during the test: a stage's spool on /tmp
    shows there, and what a warm Lambda would keep between invocations is what is left."""
    folder = tmp_path / "spools"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


SmallDisk = Callable[[str, int], "subprocess.CompletedProcess[str]"]


@pytest.fixture
def small_disk(tmp_path: Path) -> SmallDisk:
    """Run Python code in a child process whose files cannot grow past ``limit`` bytes: the
    kernel's file size limit makes a write past it fail (EFBIG), as a full /tmp does (ENOSPC).
    The child's temporary files go under the test's own folder."""
    temporary = tmp_path / "child-tmp"
    temporary.mkdir()

    def run(code: str, limit: int) -> subprocess.CompletedProcess[str]:
        prelude = (
            "import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # fail the write, not the process
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        )
        return subprocess.run(
            [sys.executable, "-c", prelude + code],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "TMPDIR": str(temporary)},
        )

    return run


@pytest.fixture
def local_lake(tmp_path: Path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


# --- the real totesys snapshots -----------------------------------------------------------------
# They are test fixtures that stay outside the repository (no licence is stated for them), so a
# machine without them cannot run the tests that load them. Every such test carries the
# real_snapshots marker, added here from its fixtures (it needs ``snapshots``, directly or through
# source_feb / source_nov), so no test can forget it. A machine with the snapshots runs them all;
# GitHub's runners deselect them explicitly with -m "not real_snapshots" (pytest reports the count
# as deselected), and anywhere else a missing snapshot fails the test rather than skipping it.
REAL_SNAPSHOTS = "real_snapshots"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REAL_SNAPSHOTS}: loads the real totesys snapshots (TOTES_SNAPSHOT_ROOT); set by "
        "tests/conftest.py on every test that uses the snapshots fixture",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    # Printed by the main process even under xdist, whose workers do the deselecting unseen.
    if REAL_SNAPSHOTS in (config.option.markexpr or ""):
        return (
            f"-m {config.option.markexpr!r}: the tests that load the real totesys snapshots are "
            f"left out; list them with pytest --collect-only -q -m {REAL_SNAPSHOTS}"
        )
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "snapshots" in getattr(item, "fixturenames", ()):
            item.add_marker(REAL_SNAPSHOTS)


@pytest.fixture(scope="session")
def snapshots() -> Path:
    root = snapshot_root()
    if not (root / "snapshot-2024-11-15").is_dir():
        pytest.fail(
            f"real snapshots not found under {root}; set TOTES_SNAPSHOT_ROOT, or deselect the "
            f'tests that need them with -m "not {REAL_SNAPSHOTS}"'
        )
    return root


# --- end of the real totesys snapshots ---------------------------------------------------------


# --- totesys source databases ------------------------------------------------------------------
# Each kind is built once per test worker as a template database; every test gets its own copy
# (CREATE DATABASE ... TEMPLATE ...), which takes a fraction of a second and may be modified.

_SOURCE_KINDS = ("empty", "feb", "nov", "generated", "small")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _clone_database(admin: DbSettings, template: str, name: str) -> DbSettings:
    from psycopg import connect, sql

    with connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


def _drop_database(admin: DbSettings, name: str) -> None:
    from psycopg import connect, sql

    with connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def source_template(pg_admin: DbSettings, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Name of the template database of a kind in _SOURCE_KINDS, built on first use. Only the
    real kinds need the snapshots (the fixtures of those kinds ask for them, which marks their
    tests real_snapshots); generated kinds run anywhere."""
    from totes_dev.source.schema import create_schema
    from totes_dev.source.snapshots import load_snapshot, snapshot_path

    built: dict[str, str] = {}

    def template(kind: str) -> str:
        if kind in built:
            return built[kind]
        name = f"totes_tpl_source_{kind}_{_worker()}"
        if kind == "empty":
            create_schema(recreate_database(pg_admin, name))
        elif kind in ("feb", "nov"):
            snapshots: Path = request.getfixturevalue("snapshots")
            db = _clone_database(pg_admin, template("empty"), name)
            load_snapshot(
                db, snapshot_path(snapshots, "2024-02-23" if kind == "feb" else "2024-11-15")
            )
        elif kind == "generated":
            from totes_dev.source.generate import generate

            generate(_clone_database(pg_admin, template("empty"), name), scale=1, seed=1)
        elif kind == "small":
            from totes_dev.source.generate import generate

            generate(_clone_database(pg_admin, template("empty"), name), scale=0.05, seed=5)
        else:
            raise ValueError(f"unknown source kind {kind!r}; one of {_SOURCE_KINDS}")
        built[kind] = name
        return name

    return template


def _source_copy(
    pg_admin: DbSettings, template: Callable[[str], str], kind: str
) -> Iterator[DbSettings]:
    name = f"totes_source_{kind}_{_worker()}_{next(_db_counter)}"
    db = _clone_database(pg_admin, template(kind), name)
    yield db
    _drop_database(pg_admin, name)


@pytest.fixture
def source_empty(
    pg_admin: DbSettings, source_template: Callable[[str], str]
) -> Iterator[DbSettings]:
    """A fresh source database with the totesys schema and no rows."""
    yield from _source_copy(pg_admin, source_template, "empty")


@pytest.fixture
def source_feb(
    pg_admin: DbSettings, source_template: Callable[[str], str], snapshots: Path
) -> Iterator[DbSettings]:
    """A fresh source database holding the real 2024-02-23 snapshot."""
    yield from _source_copy(pg_admin, source_template, "feb")


@pytest.fixture
def source_nov(
    pg_admin: DbSettings, source_template: Callable[[str], str], snapshots: Path
) -> Iterator[DbSettings]:
    """A fresh source database holding the real 2024-11-15 snapshot."""
    yield from _source_copy(pg_admin, source_template, "nov")


@pytest.fixture
def source_small(
    pg_admin: DbSettings, source_template: Callable[[str], str]
) -> Iterator[DbSettings]:
    """A fresh source database holding generated data at scale 0.05, seed 5 (about 2 500 rows):
    for scenarios that run many cycles."""
    yield from _source_copy(pg_admin, source_template, "small")


@pytest.fixture
def source_generated(
    pg_admin: DbSettings, source_template: Callable[[str], str]
) -> Iterator[DbSettings]:
    """A fresh source database holding generated data at scale 1, seed 1."""
    yield from _source_copy(pg_admin, source_template, "generated")


# --- end of totesys source databases -----------------------------------------------------------


# --- Airflow in this test process -----------------------------------------------------------
# Configured before any test module imports Airflow (it reads its configuration on import), with
# its metadata database on the test PostgreSQL, created when a test first needs it.
_HOME = Path(tempfile.mkdtemp(prefix="totes-airflow-test-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
configure_test_process(_HOME)


@pytest.fixture(scope="session")
def airflow_metadata(pg_admin: DbSettings) -> Iterator[DbSettings]:
    yield use_metadata_database(pg_admin, f"totes_airflow_{os.getpid()}")
    from airflow import settings

    settings.dispose_orm(do_log=False)  # before the test PostgreSQL stops


@pytest.fixture(autouse=True)
def _new_container() -> Iterator[None]:
    """Every test starts and ends as a cold Lambda container: nothing cached by a handler."""
    reset_container()
    yield
    reset_container()
