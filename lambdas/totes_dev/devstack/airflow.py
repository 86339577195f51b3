"""Airflow on the local stack: configuration, metadata database and the standalone UI.

``make airflow`` runs :func:`main`: a throwaway PostgreSQL (or the one PG_* name), moto with the
state machine and the real stage handlers, a generated totesys source and a migrated warehouse,
then ``airflow standalone`` (scheduler, DAG processor, triggerer, API server and UI) at
http://127.0.0.1:8080 with login disabled. The Airflow metadata database is on the same
PostgreSQL. Development and tests only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from totes.settings import DbSettings

if TYPE_CHECKING:
    from totes_dev.devstack.deploy import Deployment

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO_ROOT / "dags"
PLUGINS_FOLDER = REPO_ROOT / "plugins"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


def sqlalchemy_url(db: DbSettings) -> str:
    password = f":{quote(db.password, safe='')}" if db.password else ""
    return (
        f"postgresql+psycopg2://{quote(db.user, safe='')}{password}@{db.host}:{db.port}/"
        f"{quote(db.database, safe='')}"
    )


def airflow_environment(
    home: Path, metadata_db: DbSettings, *, api_port: int = 8080, poke_seconds: int = 2
) -> dict[str, str]:
    """Environment for every Airflow process on the local stack (add the moto variables)."""
    from totes_dev.devstack.postgres import free_port

    base_url = f"http://127.0.0.1:{api_port}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        # Local only: everyone is admin, so the UI opens without a login page.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_db),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        # The worker's and the triggerer's log servers default to fixed ports (8793, 8794): two
        # local Airflows at once (the end-to-end and the browser tests) would fight over them.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # Generated per environment so that no signing key is ever written into the project.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        # boto3's default chain reaches moto through AWS_ENDPOINT_URL; no Airflow connection.
        "TOTES_AWS_CONN_ID": "",
        "TOTES_POKE_SECONDS": str(poke_seconds),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
    }


def airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), *args]


def run_airflow(env: Mapping[str, str], *args: str, timeout: float = 300) -> str:
    """Run an ``airflow`` CLI command; its output, or an error that shows it."""
    result = subprocess.run(
        airflow_command(*args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def wait_for_http(url: str, *, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Airflow exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Standalone:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            # The whole group: every component (scheduler, workers, API server...) shuts down
            # cleanly on SIGTERM, whatever signals the parent shell made them ignore.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextlib.contextmanager
def standalone(
    env: Mapping[str, str], *, log: IO[bytes] | None = None, timeout: float = 240
) -> Iterator[Standalone]:
    """``airflow standalone`` in its own process group; waits until the API server answers."""
    base_url = env["AIRFLOW__API__BASE_URL"]
    log_path = Path(env["AIRFLOW_HOME"]) / "standalone.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        sink = log if log is not None else stack.enter_context(log_path.open("ab"))
        process = subprocess.Popen(
            airflow_command("standalone"),
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        running = Standalone(process, base_url, log_path)
        try:
            wait_for_http(f"{base_url}/api/v2/monitor/health", timeout=timeout, process=process)
            yield running
        finally:
            running.stop()


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing; its path."""
    found = shutil.which("chromium")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(
            [*sudo, *command], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"installing chromium failed ({' '.join(command)}): {result.stderr[-2000:]}"
            )
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get installed chromium but no chromium command is on PATH")
    return found


def headless_chromium(url: str, *, profile: Path, extra: list[str], budget_ms: int) -> str:
    """Open ``url`` in a fresh headless Chromium profile, let its scripts run for ``budget_ms``
    of virtual time, and return what Chromium printed (the DOM with ``--dump-dom``)."""
    result = subprocess.run(
        [
            ensure_chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


_PREPARED: dict[str, DbSettings] = {}


def configure_test_process(home: Path) -> None:
    """Point this process's Airflow at ``home`` and the repository's DAGs and plugins.

    Must run before anything imports Airflow, which reads its configuration on import. The
    metadata database is not known yet (the test PostgreSQL starts later); until
    :func:`use_metadata_database` names it, a URL that cannot connect stands in, so nothing can
    silently fall back to SQLite.
    """
    home.mkdir(parents=True, exist_ok=True)
    placeholder = DbSettings("127.0.0.1", 9, "nobody", "", "not_configured_yet")
    for name, value in airflow_environment(home, placeholder).items():
        if name != "PATH":
            os.environ.setdefault(name, value)
    if str(PLUGINS_FOLDER) not in sys.path:
        sys.path.append(str(PLUGINS_FOLDER))


def use_metadata_database(admin: DbSettings, name: str) -> DbSettings:
    """Create the metadata database ``name`` once per process, migrate it and switch this
    process's Airflow to it."""
    if name in _PREPARED:
        return _PREPARED[name]
    from totes_dev.devstack.postgres import recreate_database

    metadata = recreate_database(admin, name)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sqlalchemy_url(metadata)
    from airflow import settings
    from airflow.utils import db

    settings.configure_vars()
    settings.dispose_orm(do_log=False)
    settings.configure_orm()
    db.initdb()
    _PREPARED[name] = metadata
    return metadata


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Airflow UI on the local stack")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--scale", type=float, default=0.05, help="generated source data scale")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


WAREHOUSE_CONNECTION_VARIABLE = "AIRFLOW_CONN_TOTES_WAREHOUSE"


def warehouse_connection(env: Mapping[str, str]) -> str | None:
    """The Airflow connection to the warehouse the Lambdas load, in Airflow's JSON form, from
    their ``PG_*_DW`` settings (ports and users default to the source's, as for the Lambdas);
    None for a deployment without a warehouse. On MWAA the same connection comes from Secrets
    Manager."""
    import json

    if not env.get("PG_HOST_DW"):
        return None

    extra = {"sslmode": env["PG_SSLMODE_DW"]} if env.get("PG_SSLMODE_DW") else {}
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": env["PG_HOST_DW"],
            "port": int(env.get("PG_PORT_DW") or env["PG_PORT"]),
            "login": env.get("PG_USER_DW") or env["PG_USER"],
            "password": env.get("PG_PASSWORD_DW", ""),
            "schema": env["PG_DATABASE_DW"],
            "extra": extra,
        }
    )


def pipeline_environment(deployment: Deployment) -> dict[str, str]:
    """What the DAG reads to find the deployed resources (Variables and the warehouse connection
    on MWAA)."""
    env = {
        "TOTES_STATE_MACHINE_ARN": deployment.state_machine_arn,
        "TOTES_ALERTS_TOPIC_ARN": deployment.alerts_topic_arn,
    }
    connection = warehouse_connection(deployment.lambda_environment)
    if connection is not None:
        env[WAREHOUSE_CONNECTION_VARIABLE] = connection
    return env


def prepare_databases(
    admin: DbSettings, *, prefix: str, scale: float, seed: int
) -> tuple[DbSettings, DbSettings]:
    """A generated totesys source and an empty, migrated warehouse on ``admin``'s server."""
    from totes.load.migrations import migrate
    from totes_dev.devstack.postgres import recreate_database
    from totes_dev.source.generate import generate
    from totes_dev.source.schema import create_schema

    source = recreate_database(admin, f"{prefix}_source")
    create_schema(source)
    generate(source, scale=scale, seed=seed)
    warehouse = recreate_database(admin, f"{prefix}_warehouse")
    migrate(warehouse)
    return source, warehouse


def main(argv: list[str] | None = None) -> int:
    """``make airflow``: the local stack and the Airflow UI until Ctrl-C."""
    from totes_dev.devstack.aws import moto_server
    from totes_dev.devstack.deploy import database_environment, deploy
    from totes_dev.devstack.postgres import postgres_server, recreate_database

    args = _arguments(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, or a SIGTERM from a supervisor, must still stop Airflow and the throwaway stack.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    home = Path(tempfile.mkdtemp(prefix="totes-airflow-"))
    try:
        with postgres_server() as admin, moto_server() as moto:
            source, warehouse = prepare_databases(
                admin, prefix="totes_local", scale=args.scale, seed=args.seed
            )
            deployment = deploy(database_environment(source, warehouse))
            metadata = recreate_database(admin, "totes_local_airflow")
            env = {
                **moto.env,
                **airflow_environment(home, metadata, api_port=args.port),
                **pipeline_environment(deployment),
            }
            print(
                f"Local stack up: source {source.describe()}, warehouse {warehouse.describe()}, "
                f"AWS {moto.endpoint}"
            )
            print(f"Starting Airflow at {env['AIRFLOW__API__BASE_URL']} (Ctrl-C stops)")
            with standalone(env, log=sys.stdout.buffer) as running:
                print(f"Airflow is up: {running.base_url}/dags/totes_pipeline")
                with contextlib.suppress(KeyboardInterrupt):
                    running.process.wait()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
