"""A crash at every boundary and in the middle of every stage, then a healthy run: the warehouse
must end exactly as that of a run without the crash, with nothing lost, nothing twice, and no lake
object ever rewritten.

Each scenario: a generated source, a first clean cycle, two hours of simulated activity (new
orders, paid flips, in-place edits, deletes), then a cycle that crashes at one point, then a
healthy full-scan cycle. The reference is the same source and steps without the crash.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.commits import committed_after
from totes.contracts.warehouse import TABLES
from totes.lake import Lake, LocalLake, S3Lake
from totes.naming import ResourceNames
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import (
    Deployment,
    database_environment,
    deploy,
    read_alerts,
    subscribe_queue,
)
from totes_dev.faults import FaultyLake, InjectedFault, at_key, at_write, refuse_next_insert
from totes_dev.source.simulate import simulate

pytestmark = pytest.mark.slow

Dump = dict[str, list[tuple[Any, ...]]]


def dump(db: DbSettings) -> Dump:
    """Every warehouse row, in record-id or key order, without the batch ids (random per run)."""
    out: Dump = {}
    with psycopg.connect(**db.conninfo()) as conn:
        for name, spec in TABLES.items():
            columns = [c.name for c in spec.staged_columns if c.name != "batch_id"]
            if spec.record_id:
                columns.insert(0, spec.record_id)
            order = spec.record_id or spec.key
            out[name] = conn.execute(
                f"SELECT {', '.join(columns)} FROM {name} ORDER BY {order}".encode()
            ).fetchall()
    return out


def _objects(lake: LocalLake) -> dict[str, str]:
    return {
        key: hashlib.sha256(lake.get(key)).hexdigest()
        for key in lake.list("")
        if not key.startswith("_leases/")
    }


@dataclass
class Scenario:
    stack: Stack
    ingestion: LocalLake
    processed: LocalLake


def _start(source: DbSettings, warehouse: DbSettings, root: Path) -> Scenario:
    ingestion, processed = LocalLake(root / "ingestion"), LocalLake(root / "processed")
    stack = Stack(source, ingestion, processed, warehouse, ExtractSettings())
    run_cycle(stack)
    simulate(source, minutes=120, seed=9, silent_edits=True, deletes=True)
    return Scenario(stack, ingestion, processed)


@pytest.fixture
def scenario(source_small: DbSettings, new_database: Any, tmp_path: Path) -> Scenario:
    return _start(source_small, new_database("wh"), tmp_path)


def _database(admin: DbSettings, name: str, template: str | None = None) -> DbSettings:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(statement)
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


@pytest.fixture(scope="module")
def reference(
    pg_admin: DbSettings,
    source_template: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Dump:
    """The warehouse after the same steps with no crash (a source of its own, same seeds)."""
    suffix = uuid.uuid4().hex[:8]
    source = _database(pg_admin, f"totes_faults_ref_src_{suffix}", source_template("small"))
    warehouse = _database(pg_admin, f"totes_faults_ref_wh_{suffix}")
    clean = _start(source, warehouse, tmp_path_factory.mktemp("reference"))
    run_cycle(clean.stack, full_scan=True)
    run_cycle(clean.stack, full_scan=True)
    return dump(warehouse)


Fault = Callable[[Scenario], Stack]


def _lakes(
    scenario: Scenario, *, ingestion: Lake | None = None, processed: Lake | None = None
) -> Stack:
    stack = scenario.stack
    return Stack(
        stack.source,
        ingestion or stack.ingestion,
        processed or stack.processed,
        stack.warehouse,
        stack.settings,
    )


def _ingestion(fail_on: Callable[[str, int], bool], *, after: bool = False) -> Fault:
    return lambda s: _lakes(s, ingestion=FaultyLake(s.ingestion, fail_on, after=after))


def _processed(fail_on: Callable[[str, int], bool], *, after: bool = False) -> Fault:
    return lambda s: _lakes(s, processed=FaultyLake(s.processed, fail_on, after=after))


def _warehouse_refuses(table: str) -> Fault:
    def arm(s: Scenario) -> Stack:
        refuse_next_insert(s.stack.warehouse, table)
        return s.stack

    return arm


FAULTS: dict[str, Fault] = {
    # The lease record is the cycle's first write: taking the lock fails.
    "the cycle lock cannot be taken": _ingestion(at_key(r"^_leases/")),
    "extract: storage fails after some data objects": _ingestion(at_write(4)),
    "extract: storage fails on its state objects": _ingestion(at_key(r"^_state/payment/")),
    "extract: fails just before its manifest": _ingestion(at_key(r"^_manifests/")),
    "extract: dies just after its manifest": _ingestion(at_key(r"^_manifests/"), after=True),
    "transform: storage fails mid-batch": _processed(at_write(3)),
    "transform: fails writing a fact": _processed(at_key(r"^fact_payment/")),
    "transform: fails just before its manifest": _processed(at_key(r"^_manifests/")),
    "transform: dies just after its manifest": _processed(at_key(r"^_manifests/"), after=True),
    "load: fails between dimensions and facts": _warehouse_refuses("fact_sales_order"),
    "load: fails on the last fact": _warehouse_refuses("fact_payment"),
    "load: fails just before it commits": _warehouse_refuses("warehouse_batch_ledger"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_after_a_crash_the_next_run_converges_to_the_warehouse_of_a_run_without_it(
    fault: str, scenario: Scenario, reference: Dump
) -> None:
    before = {"ingestion": _objects(scenario.ingestion), "processed": _objects(scenario.processed)}
    crashing = FAULTS[fault](scenario)
    # The failure is the injected one, through whatever error the stage turned it into.
    with pytest.raises(Exception, match="injected") as crashed:
        run_cycle(crashing, full_scan=True)
    assert crashed.value is not None

    run_cycle(scenario.stack, full_scan=True)

    report = check(scenario.stack.source, scenario.stack.warehouse)
    assert report.ok, format_report(report)
    assert dump(scenario.stack.warehouse) == reference
    for name, lake in (("ingestion", scenario.ingestion), ("processed", scenario.processed)):
        after = _objects(lake)
        # Write-once: every object there before is still there, byte for byte.
        assert {k: after.get(k) for k in before[name]} == before[name], name


def test_an_execution_that_dies_between_stages_is_completed_by_the_next_one(
    source_small: DbSettings, new_database: Any, moto_stack: MotoStack
) -> None:
    """The real state machine and handlers: the transform Lambda dies once, after the extract
    committed; the execution fails with an alert, and the next execution does what was left."""
    from totes.transform.handler import lambda_handler as transform

    dies_once = [InjectedFault("injected crash of the transform Lambda")]

    def crashing_transform(event: Any, context: Any) -> Any:
        if dies_once:
            raise dies_once.pop()
        return transform(event, context)

    warehouse = new_database("wh")
    names = ResourceNames(environment=f"f{uuid.uuid4().hex[:6]}")
    deployment = deploy(
        database_environment(source_small, warehouse),
        names,
        handlers={"transform": crashing_transform},
    )
    alerts = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox")
    failed = _execute(deployment, "dies-between-stages")
    assert (failed["status"], failed["error"]) == ("FAILED", "InjectedFault")
    (alert,) = read_alerts(alerts)
    assert "injected crash of the transform Lambda" in alert["message"]
    committed = committed_after(S3Lake(names.ingestion_bucket), 0)
    assert [b.sequence for b in committed] == [1]  # the extract had committed its batch

    done = _execute(deployment, "next-run")
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert output["extract"]["batch_id"] is None, json.dumps(output["extract"])
    assert output["load"]["batches"] == [committed[0].batch_id]  # the dead run's batch
    report = check(source_small, warehouse)
    assert report.ok, format_report(report)
    assert read_alerts(alerts, wait_seconds=0) == []


def _execute(deployment: Deployment, name: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=deployment.state_machine_arn,
        name=name,
        input=json.dumps(
            {"run_id": name, "window_start": None, "window_end": None, "full_scan": False}
        ),
    )["executionArn"]
    deadline = time.monotonic() + 120
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {name} did not finish"
        time.sleep(0.2)
    return dict(described)
