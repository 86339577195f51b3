"""Outages and slowness through the real state machine and handlers: the source, the warehouse
or S3 gone at the start of a stage or in the middle of one, a source query over its time limit, a
password rotated under the pipeline. Each ends the execution FAILED with an error that names the
step (and the table, where there is one), publishes it to the alerts topic, leaves no half batch
visible, and the next healthy execution recovers with nothing lost.

The source and the warehouse run on servers of their own, so a test can stop them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.commits import committed_after
from totes.lake import S3Lake
from totes.naming import ResourceNames
from totes.settings import DbSettings
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import (
    Deployment,
    database_environment,
    deploy,
    read_alerts,
    subscribe_queue,
)
from totes_dev.devstack.postgres import (
    TempCluster,
    create_password_login,
    recreate_database,
    start_cluster,
)
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema

pytestmark = pytest.mark.slow


@dataclass
class Servers:
    source_cluster: TempCluster
    warehouse_cluster: TempCluster
    source: DbSettings
    warehouse: DbSettings


@pytest.fixture
def servers() -> Iterator[Servers]:
    source_cluster, warehouse_cluster = start_cluster(), start_cluster()
    try:
        source = recreate_database(source_cluster.dsn(), "totesys")
        create_schema(source)
        generate(source, scale=0.05, seed=5)
        with psycopg.connect(**warehouse_cluster.dsn().conninfo(), autocommit=True) as conn:
            create_password_login(conn, "loader", "first")
            conn.execute("CREATE DATABASE warehouse OWNER loader")
        warehouse = DbSettings("127.0.0.1", warehouse_cluster.port, "loader", "first", "warehouse")
        yield Servers(source_cluster, warehouse_cluster, source, warehouse)
    finally:
        source_cluster.stop()
        warehouse_cluster.stop()


@dataclass
class Pipeline:
    servers: Servers
    names: ResourceNames
    deployment: Deployment
    alerts: str

    @property
    def ingestion(self) -> S3Lake:
        return S3Lake(self.names.ingestion_bucket)

    def execute(self, name: str, *, full_scan: bool = False) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions")
        arn = sfn.start_execution(
            stateMachineArn=self.deployment.state_machine_arn,
            name=name,
            input=json.dumps({"run_id": name, "window_start": None, "full_scan": full_scan}),
        )["executionArn"]
        deadline = time.monotonic() + 120
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"execution {name} did not finish"
            time.sleep(0.1)
        return dict(described)

    def failed(self, name: str, *, full_scan: bool = False) -> tuple[dict[str, Any], str]:
        """An execution that must fail: its description and the one alert it published."""
        described = self.execute(name, full_scan=full_scan)
        assert described["status"] == "FAILED", described
        alerts = read_alerts(self.alerts)
        assert len(alerts) == 1, alerts
        assert alerts[0]["subject"] == "Terrific Totes pipeline failed"
        assert f"Pipeline execution {name} failed." in alerts[0]["message"]
        return described, alerts[0]["message"]

    def recovers(self, name: str, *, full_scan: bool = False) -> dict[str, Any]:
        described = self.execute(name, full_scan=full_scan)
        assert described["status"] == "SUCCEEDED", described
        report = check(self.servers.source, self.servers.warehouse)
        assert report.ok, format_report(report)
        assert read_alerts(self.alerts, wait_seconds=0) == []
        return dict(json.loads(described["output"]))


def _pipeline(servers: Servers, **environment: str) -> Pipeline:
    names = ResourceNames(environment=f"o{uuid.uuid4().hex[:6]}")
    deployment = deploy(
        {**database_environment(servers.source, servers.warehouse), **environment}, names
    )
    return Pipeline(
        servers,
        names,
        deployment,
        subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox"),
    )


@pytest.fixture
def pipeline(servers: Servers, moto_stack: MotoStack) -> Pipeline:
    built = _pipeline(servers)
    assert built.execute("first")["status"] == "SUCCEEDED"
    return built


def _ledger(warehouse: DbSettings) -> list[tuple[Any, ...]]:
    with psycopg.connect(**warehouse.conninfo()) as conn:
        return conn.execute(
            "SELECT sequence, (SELECT count(*) FROM fact_payment) FROM warehouse_batch_ledger"
            " ORDER BY 1"
        ).fetchall()


def _change_the_source(source: DbSettings) -> None:
    """Five payments change, stamped after everything already captured."""
    with psycopg.connect(**source.conninfo(), autocommit=True) as conn:
        conn.execute(
            "UPDATE payment SET paid = NOT paid,"
            " last_updated = (SELECT max(last_updated) FROM payment) + interval '1 hour'"
            " WHERE payment_id <= 5"
        )


class Blocked:
    """A table locked by another session, so that a stage waiting on it stays in the middle of
    its work until the test decides what happens to it."""

    def __init__(self, db: DbSettings, table: str) -> None:
        self.conn = psycopg.connect(**db.conninfo())
        self.conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        )
        self.db, self.table = db, table

    def waiting(self, application: str | None = None) -> int:
        """The backend waiting on the lock (polls until one is)."""
        deadline = time.monotonic() + 30
        with psycopg.connect(**self.db.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = %s AND (%s::text IS NULL OR application_name = %s)",
                    (self.db.database, application, application),
                ).fetchone()
                if row:
                    return int(row[0])
                time.sleep(0.05)
        raise AssertionError(f"nothing waited on {self.table}")

    def terminate(self, pid: int) -> None:
        with psycopg.connect(**self.db.conninfo(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def _in_background(pipeline: Pipeline, name: str, *, full_scan: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(described=pipeline.failed(name, full_scan=full_scan))
    )
    thread.start()
    result["thread"] = thread
    return result


def test_the_source_down_at_the_start_of_a_run(pipeline: Pipeline) -> None:
    before = committed_after(pipeline.ingestion, 0)
    pipeline.servers.source_cluster.stop_server()
    described, alert = pipeline.failed("source-down")
    assert described["error"] == "SourceError"
    assert "[extract] cannot connect to the source database" in alert
    assert "Connection refused" in alert
    assert committed_after(pipeline.ingestion, 0) == before  # no half batch visible
    pipeline.servers.source_cluster.start()
    pipeline.recovers("source-back", full_scan=True)


def test_the_source_lost_in_the_middle_of_the_extract(pipeline: Pipeline) -> None:
    before = committed_after(pipeline.ingestion, 0)
    _change_the_source(pipeline.servers.source)
    blocked = Blocked(pipeline.servers.source, "payment")  # read by a worker of its own
    run = _in_background(pipeline, "source-lost", full_scan=True)
    blocked.terminate(blocked.waiting("totes-extract-table"))
    run["thread"].join()
    blocked.release()
    described, alert = run["described"]
    assert described["error"] == "SourceError"
    assert "[extract table=payment] reading the source table failed" in alert
    assert committed_after(pipeline.ingestion, 0) == before
    output = pipeline.recovers("source-steady")
    assert output["extract"]["rows"]["payment"] == 5
    pipeline.recovers("source-full-scan", full_scan=True)


def test_a_source_query_over_its_time_limit(servers: Servers, moto_stack: MotoStack) -> None:
    pipeline = _pipeline(servers, TOTES_SOURCE_STATEMENT_TIMEOUT_SECONDS="1")
    assert pipeline.execute("first")["status"] == "SUCCEEDED"
    _change_the_source(servers.source)
    blocked = Blocked(servers.source, "payment")
    described, alert = pipeline.failed("slow-source", full_scan=True)
    blocked.release()
    assert "[extract table=payment] reading the source table failed" in alert
    assert "canceling statement due to statement timeout" in alert
    assert described["error"] == "SourceError"
    pipeline.recovers("fast-source")


def test_the_warehouse_down_at_the_start_of_the_load(pipeline: Pipeline) -> None:
    _change_the_source(pipeline.servers.source)
    ledger = _ledger(pipeline.servers.warehouse)
    pipeline.servers.warehouse_cluster.stop_server()
    described, alert = pipeline.failed("warehouse-down")
    assert described["error"] == "WarehouseError"
    assert "[load] cannot connect to the warehouse database loader@" in alert
    pipeline.servers.warehouse_cluster.start()
    assert _ledger(pipeline.servers.warehouse) == ledger
    output = pipeline.recovers("warehouse-back")
    assert output["extract"]["batch_id"] is None  # the extract and transform had been done
    assert len(output["load"]["batches"]) == 1


def test_the_warehouse_lost_in_the_middle_of_the_load(pipeline: Pipeline) -> None:
    _change_the_source(pipeline.servers.source)
    ledger = _ledger(pipeline.servers.warehouse)
    admin = DbSettings(
        "127.0.0.1", pipeline.servers.warehouse_cluster.port, "totes", "", "warehouse"
    )
    blocked = Blocked(admin, "fact_payment")
    run = _in_background(pipeline, "warehouse-lost", full_scan=False)
    blocked.terminate(blocked.waiting())
    run["thread"].join()
    blocked.release()
    described, alert = run["described"]
    assert described["error"] == "WarehouseError"
    assert "[load table=fact_payment] merge failed in batch" in alert
    assert "terminating connection due to administrator command" in alert
    assert _ledger(pipeline.servers.warehouse) == ledger  # the batch rolled back whole
    pipeline.recovers("warehouse-steady")


def test_s3_unreachable_from_one_stage(servers: Servers, moto_stack: MotoStack) -> None:
    pipeline = _pipeline(servers)
    assert pipeline.execute("first")["status"] == "SUCCEEDED"
    _change_the_source(servers.source)
    # The transform's S3 endpoint is a port nothing listens on; the other stages reach S3.
    unreachable = deploy(
        {**database_environment(servers.source, servers.warehouse)},
        pipeline.names,
        function_environment={
            "transform": {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
        },
    )
    assert unreachable.state_machine_arn == pipeline.deployment.state_machine_arn
    described, alert = pipeline.failed("s3-gone")
    assert described["error"] == "LakeError"
    assert "[lake] listing _manifests/ in s3://" in alert
    assert "Could not connect to the endpoint URL" in alert
    deploy({**database_environment(servers.source, servers.warehouse)}, pipeline.names)
    output = pipeline.recovers("s3-back")
    assert output["extract"]["batch_id"] is None
    assert len(output["transform"]["batches"]) == 1


def test_a_password_rotated_under_the_pipeline(servers: Servers, moto_stack: MotoStack) -> None:
    secret_id = f"totes/o{uuid.uuid4().hex[:6]}/warehouse-db"
    secrets = boto3.client("secretsmanager")

    def store(password: str) -> None:
        values = {
            "PG_HOST_DW": "127.0.0.1",
            "PG_PORT_DW": str(servers.warehouse_cluster.port),
            "PG_USER_DW": "loader",
            "PG_PASSWORD_DW": password,
            "PG_DATABASE_DW": "warehouse",
        }
        secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(values))

    secrets.create_secret(Name=secret_id, SecretString="{}")
    store("first")
    source_only = {
        k: v
        for k, v in database_environment(servers.source, servers.warehouse).items()
        if not k.endswith("_DW")
    }
    pipeline = _pipeline(servers, **source_only, TOTES_WAREHOUSE_SECRET_ID=secret_id)
    assert pipeline.execute("first")["status"] == "SUCCEEDED"
    with psycopg.connect(**servers.warehouse_cluster.dsn().conninfo(), autocommit=True) as conn:
        conn.execute("ALTER ROLE loader PASSWORD 'second'")
    # The database has the new password, the secret not yet: a clear error and an alert.
    described, alert = pipeline.failed("rotated")
    assert described["error"] == "WarehouseError"
    assert "password authentication failed" in alert
    store("second")
    # Warm containers still hold the old secret; the refused login makes them re-read it.
    servers.warehouse = DbSettings(
        servers.warehouse.host, servers.warehouse.port, "loader", "second", "warehouse"
    )
    pipeline.recovers("secret-updated")
