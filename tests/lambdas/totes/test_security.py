"""Security properties, each proved against the real thing: bandit finds nothing in what is
deployed; a known password never reaches a log line, an alert, an execution's output or history,
or the lake; hostile table and column names entering through any door are refused or quoted,
never run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from totes.batches import manifest_key
from totes.cli import main
from totes.contracts.ingestion import data_key
from totes.contracts.warehouse import warehouse_table
from totes.errors import LakeError, WarehouseError
from totes.lake import LocalLake, put_json, read_parquet
from totes.load.loader import load_pending
from totes.load.merge import ident
from totes.naming import ResourceNames
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes.tables import source_table
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import database_environment, deploy, read_alerts, subscribe_queue
from totes_dev.devstack.postgres import TempCluster, create_password_login, start_cluster
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = f"Pw-{uuid.uuid4().hex}-secret"


def test_bandit_finds_nothing_in_what_is_deployed() -> None:
    """Settings (and the justified skips) in .github/bandit.yml, which the workflow runs too."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-c",
            str(ROOT / ".github" / "bandit.yml"),
            "-r",
            "lambdas/totes",
            "plugins",
            "dags",
            "-f",
            "json",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["results"] == [], json.dumps(report["results"], indent=1)[:3000]
    assert report["metrics"]["_totals"]["loc"] > 5000  # it did read the code


@pytest.fixture
def cluster() -> Iterator[TempCluster]:
    server = start_cluster()
    try:
        with psycopg.connect(**server.dsn().conninfo(), autocommit=True) as conn:
            create_password_login(conn, "pipeline", PASSWORD)
            conn.execute("CREATE DATABASE totesys OWNER pipeline")
            conn.execute("CREATE DATABASE warehouse OWNER pipeline")
        yield server
    finally:
        server.stop()


def test_a_known_password_reaches_no_log_alert_output_or_lake_object(
    cluster: TempCluster, moto_stack: MotoStack, capfd: pytest.CaptureFixture[str]
) -> None:
    source = DbSettings("127.0.0.1", cluster.port, "pipeline", PASSWORD, "totesys")
    warehouse = DbSettings("127.0.0.1", cluster.port, "pipeline", PASSWORD, "warehouse")
    create_schema(source)
    generate(source, scale=0.02, seed=3)
    names = ResourceNames(environment=f"s{uuid.uuid4().hex[:6]}")
    # The passwords come from Secrets Manager, as on AWS.
    secrets = boto3.client("secretsmanager")
    environment = database_environment(source, warehouse)
    for role, wanted in (("source", False), ("warehouse", True)):
        values = {k: v for k, v in environment.items() if k.endswith("_DW") == wanted}
        secrets.create_secret(Name=f"{names.environment}/{role}", SecretString=json.dumps(values))
    deployment = deploy(
        {
            "TOTES_SOURCE_SECRET_ID": f"{names.environment}/source",
            "TOTES_WAREHOUSE_SECRET_ID": f"{names.environment}/warehouse",
        },
        names,
    )
    alerts = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox")
    sfn = boto3.client("stepfunctions")

    def execute(name: str) -> dict[str, Any]:
        arn = sfn.start_execution(
            stateMachineArn=deployment.state_machine_arn, name=name, input="{}"
        )["executionArn"]
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            time.sleep(0.1)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)
        return {"described": described, "history": history["events"]}

    good = execute("with-the-password")
    assert good["described"]["status"] == "SUCCEEDED"
    with psycopg.connect(**cluster.dsn().conninfo(), autocommit=True) as conn:
        conn.execute("ALTER ROLE pipeline PASSWORD 'another'")  # now the secret's is wrong
    bad = execute("refused")
    assert bad["described"]["status"] == "FAILED"
    published = read_alerts(alerts)
    assert any("password authentication failed" in a["message"] for a in published)

    captured = capfd.readouterr()
    everything = [captured.out, captured.err, json.dumps(published)]
    everything += [json.dumps(run, default=str) for run in (good, bad)]
    s3 = boto3.client("s3")
    for bucket in (names.ingestion_bucket, names.processed_bucket):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            everything.append(
                s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("latin-1")
            )
    assert len("".join(everything)) > 100_000  # the logs, alerts, histories and lake were read
    for text in everything:
        assert PASSWORD not in text


@pytest.mark.parametrize(
    "name",
    ['dim_date"; DROP TABLE dim_date; --', "../payment", "Dim_Date", "dim date", ""],
)
def test_hostile_table_names_are_refused_by_every_allow_list(name: str) -> None:
    with pytest.raises(KeyError):
        warehouse_table(name)
    with pytest.raises(KeyError):
        source_table(name)
    with pytest.raises(ValueError, match="not an allowed identifier"):
        ident(name)


def test_a_processed_manifest_naming_a_hostile_table_is_refused(
    new_database: Any, tmp_path: Path
) -> None:
    from totes.load.migrations import migrate

    empty_database = new_database("wh")
    migrate(empty_database)
    lake = LocalLake(tmp_path / "processed")
    hostile = 'dim_date"; DROP TABLE fact_payment; --'
    put_json(
        lake,
        manifest_key(1),
        {
            "format": 1,
            "kind": "processed",
            "batch_id": "20260101T000000000Z-00000000",
            "sequence": 1,
            "tables": {hostile: {"key": "x.parquet", "rows": 1}},
        },
    )
    with pytest.raises(WarehouseError, match="names an unknown table"):
        load_pending(empty_database, lake)
    with psycopg.connect(**empty_database.conninfo()) as conn:
        assert conn.execute("SELECT to_regclass('fact_payment')").fetchone() == ("fact_payment",)


def test_a_hostile_column_in_the_source_is_quoted_and_landed_never_run(
    source_small: DbSettings, new_database: Any, tmp_path: Path
) -> None:
    stack = Stack(
        source_small,
        LocalLake(tmp_path / "ingestion"),
        LocalLake(tmp_path / "processed"),
        new_database("wh"),
        ExtractSettings(),
    )
    run_cycle(stack)
    column = 'x"; DROP TABLE payment; --'
    with psycopg.connect(**source_small.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE currency ADD COLUMN {} text").format(sql.Identifier(column))
        )
        conn.execute(
            sql.SQL(
                "UPDATE currency SET {} = 'boom', last_updated = last_updated + interval '1 year'"
                " WHERE currency_id = 1"
            ).format(sql.Identifier(column))
        )
    summary = run_cycle(stack)
    assert summary["landed"]["currency"] == 1
    with psycopg.connect(**source_small.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM payment").fetchone() != (0,)
    landed = read_parquet(stack.ingestion, data_key("currency", summary["batch_id"]))
    assert landed.column(column).to_pylist() == ["boom"]


def test_a_hostile_quarantine_key_cannot_leave_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOTES_INGESTION_URI", str(tmp_path / "ingestion"))
    monkeypatch.setenv("TOTES_PROCESSED_URI", str(tmp_path / "processed"))
    (tmp_path / "secret.parquet").write_bytes(b"outside the lake")
    assert main(["quarantine", "replay", "../secret.parquet"]) == 1
    assert "escapes the lake" in capsys.readouterr().err
    with pytest.raises(LakeError, match="escapes the lake"):
        LocalLake(tmp_path / "processed").get("../../etc/passwd")
