"""The DAG end to end, as ``dag.test()`` runs it: Airflow (metadata on the test PostgreSQL) starts
our state machine on moto's Step Functions, which invokes the real extract, transform and load
handlers against a generated totesys and a real warehouse.

Each test is one whole scenario on its own stack: test workers may split a module's tests
between them, so no test relies on another having run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.load.migrations import migrate
from totes.naming import ResourceNames
from totes.settings import DbSettings
from totes_airflow.execution_names import execution_name
from totes_dev.devstack.airflow import DAGS_FOLDER, pipeline_environment
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import (
    Deployment,
    database_environment,
    deploy,
    read_alerts,
    subscribe_queue,
)
from totes_dev.devstack.postgres import TempCluster, recreate_database, start_cluster
from totes_dev.source.generate import generate
from totes_dev.source.schema import create_schema
from totes_dev.source.simulate import simulate

pytestmark = pytest.mark.slow

DAG_ID = "totes_pipeline"
SCALE = 0.03
FACT_SOURCES = {
    "fact_sales_order": "sales_order",
    "fact_purchase_order": "purchase_order",
    "fact_payment": "payment",
}


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=UTC)


# dag.test names a run after run_after: fixed values give each window a stable run id.
FIRST = (_at(10, 5), _at(10, 6))  # window 09:40-10:00
SECOND = (_at(10, 25), _at(10, 26))  # window 10:00-10:20
BROKEN = (_at(10, 45), _at(10, 46))  # window 10:20-10:40
BAD_WAREHOUSE = (_at(11, 5), _at(11, 6))  # window 10:40-11:00
CHECK_TASKS = (
    "warehouse_checks.dimension_keys",
    "warehouse_checks.fact_references",
    "warehouse_checks.current_views",
    "warehouse_checks.fact_versions",
)


@dataclass
class Stack:
    source_cluster: TempCluster
    source: DbSettings
    warehouse: DbSettings
    deployment: Deployment
    alerts_queue: str
    dag: Any


@pytest.fixture
def stack(
    pg_admin: DbSettings, moto_stack: MotoStack, airflow_metadata: DbSettings
) -> Iterator[Stack]:
    # The source gets its own server so that a test can stop it.
    cluster = start_cluster()
    try:
        source = recreate_database(cluster.dsn(), "totesys")
        create_schema(source)
        generate(source, scale=SCALE, seed=11)
        warehouse = recreate_database(pg_admin, f"totes_e2e_warehouse_{time.time_ns()}")
        migrate(warehouse)
        # A fresh environment name: fresh buckets, so no earlier test's batches are pending.
        names = ResourceNames(environment=f"e2e{uuid.uuid4().hex[:6]}")
        deployment = deploy(database_environment(source, warehouse), names)
        queue = subscribe_queue(deployment.alerts_topic_arn, f"{names.alerts_topic}-inbox")
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {
                **pipeline_environment(deployment),
                "TOTES_POKE_SECONDS": "1",
                "TOTES_AWS_CONN_ID": "",
                # dag.test() cannot run a DAG with a deadline (see PipelineConfig.deadline); the
                # standalone scenario below runs it with one.
                "TOTES_DEADLINE_SECONDS": "0",
            }.items():
                patch.setenv(name, value)
            from airflow.dag_processing.dagbag import DagBag

            bag = DagBag(dag_folder=str(DAGS_FOLDER / "totes_pipeline.py"))
            assert bag.import_errors == {}
            yield Stack(cluster, source, warehouse, deployment, queue, bag.dags[DAG_ID])
    finally:
        cluster.stop()


def _run(stack: Stack, logical_date: datetime, run_after: datetime) -> Any:
    return stack.dag.test(logical_date=logical_date, run_after=run_after)


def _xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).one()
        return XComModel.deserialize_value(row)


def _note(run: Any) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.get(DagRun, run.id)
        assert stored is not None
        return stored.note


def _asset_events(run: Any) -> dict[str, dict[str, Any]]:
    """The asset events the run's tasks emitted: asset name -> extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
        ).all()
    return {name: dict(extra) for name, extra in rows}


def _pending_deadlines(run: Any) -> list[Any]:
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(Deadline).where(Deadline.dagrun_id == run.id)))


def _newest_change(warehouse: DbSettings) -> datetime:
    with psycopg.connect(**warehouse.conninfo()) as conn:
        row = conn.execute(
            "SELECT max(last_updated_date + last_updated_time) FROM ("
            " SELECT last_updated_date, last_updated_time FROM fact_sales_order UNION ALL"
            " SELECT last_updated_date, last_updated_time FROM fact_purchase_order UNION ALL"
            " SELECT last_updated_date, last_updated_time FROM fact_payment) AS facts"
        ).fetchone()
    assert row is not None
    newest: datetime = row[0]
    return newest.replace(tzinfo=UTC)


def _fact_rows(warehouse: DbSettings) -> dict[str, int]:
    with psycopg.connect(**warehouse.conninfo()) as conn:
        return {
            fact: int(conn.execute(f"SELECT count(*) FROM {fact}").fetchone()[0])  # type: ignore[index]
            for fact in FACT_SOURCES
        }


def _executions(stack: Stack) -> dict[str, dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=stack.deployment.state_machine_arn)
    return {
        e["name"]: dict(sfn.describe_execution(executionArn=e["executionArn"]))
        for e in listed["executions"]
    }


def _alerts_of(stack: Stack, run: Any, subjects: set[str]) -> list[dict[str, str]]:
    """The alerts naming ``run``, once every one of ``subjects`` has arrived (15 s at most):
    an alert about another run would be a wrong one."""
    mine: list[dict[str, str]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        mine += [
            alert
            for alert in read_alerts(stack.alerts_queue)
            if f"Run: {run.run_id}" in alert["message"]
            or f"Run:    {run.run_id}" in alert["message"]
        ]
        if subjects <= {alert["subject"] for alert in mine}:
            break
    return mine


def _assert_checked(stack: Stack) -> None:
    report = check(stack.source, stack.warehouse)
    assert report.ok, format_report(report)


def test_dag_runs_end_to_end_through_step_functions(stack: Stack) -> None:
    """A first run, a run after simulated activity, a re-run of that finished run, and a run
    with the source database stopped, in that order on one stack."""
    _first_run_fills_the_warehouse_and_check_accepts_it(stack)
    _second_run_adds_exactly_the_simulated_versions(stack)
    _rerunning_a_finished_run_reuses_its_execution_and_adds_nothing(stack)
    _failed_warehouse_check_fails_the_run_and_alerts(stack)
    _source_down_fails_the_run_and_alerts(stack)


def _map_iterations(execution_arn: str) -> int:
    """How many iterations of a Map state succeeded in the execution (its history events)."""
    sfn = boto3.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return sum(e["type"] == "MapIterationSucceeded" for page in pages for e in page["events"])


def _first_run_fills_the_warehouse_and_check_accepts_it(stack: Stack) -> None:
    started = time.monotonic()
    run = _run(stack, *FIRST)
    seconds = time.monotonic() - started
    assert run.state == "success", [(ti.task_id, ti.state) for ti in run.get_task_instances()]
    print(f"first DAG run: {seconds:.1f} s")

    name = execution_name(DAG_ID, run.run_id)
    execution = _executions(stack)[name]
    assert execution["status"] == "SUCCEEDED"
    assert _xcom(run, "start_pipeline") == execution["executionArn"]
    assert json.loads(execution["input"]) == {
        "run_id": run.run_id,
        "window_start": "2026-11-20T09:40:00+00:00",
        "window_end": "2026-11-20T10:00:00+00:00",
        "full_scan": False,
    }

    # The extract fanned out: a first run reads all 11 tables, one Map iteration each.
    assert _map_iterations(execution["executionArn"]) == 11

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(
        ("start_pipeline", "wait_for_pipeline", *CHECK_TASKS, "summary"), "success"
    )
    summary = _xcom(run, "summary")
    assert summary["run_id"] == run.run_id
    assert summary["window_start"] == "2026-11-20T09:40:00+00:00"
    assert summary["extracted"]["sales_order"] > 0
    assert summary["fact_versions_added"] == _fact_rows(stack.warehouse)
    # Freshness is measured from the newest source change the warehouse now holds.
    newest = _newest_change(stack.warehouse)
    assert summary["newest_change"] == newest.isoformat()
    finished = datetime.fromisoformat(summary["finished_at"])
    assert summary["freshness_lag_seconds"] == round((finished - newest).total_seconds(), 3)

    # The summary is on the run itself, as its note, and in XCom.
    note = _note(run)
    assert note is not None
    assert note == _xcom(run, "summary", "note")
    assert "**Freshness**" in note
    sales = summary["fact_versions_added"]["fact_sales_order"]
    assert f"| fact_sales_order | {summary['loaded']['fact_sales_order']} | {sales} | 0 |" in note

    # Asset events carry the counts: the lakes from the sensor, the tables from the summary.
    events = _asset_events(run)
    assert events["ingestion_lake"]["rows"] == summary["extracted"]
    assert events["processed_lake"]["rows"] == summary["transformed"]
    assert events["warehouse.fact_sales_order"] == {
        "run_id": run.run_id,
        "rows": summary["loaded"]["fact_sales_order"],
        "fact_versions_added": sales,
    }
    assert len([name for name in events if name.startswith("warehouse.")]) == 11
    _assert_checked(stack)


def _second_run_adds_exactly_the_simulated_versions(stack: Stack) -> None:
    before = _fact_rows(stack.warehouse)
    report = simulate(stack.source, minutes=20, seed=5)
    expected = {
        fact: len(report["inserted"].get(table, [])) + len(report["updated"].get(table, []))
        for fact, table in FACT_SOURCES.items()
    }
    assert expected["fact_sales_order"] > 0

    run = _run(stack, *SECOND)
    assert run.state == "success"
    # Only the tables the simulation changed are read again, each by a worker of its own.
    execution = _executions(stack)[execution_name(DAG_ID, run.run_id)]
    changed = set(report["inserted"]) | set(report["updated"])
    assert 0 < _map_iterations(execution["executionArn"]) <= len(changed)

    after = _fact_rows(stack.warehouse)
    assert {fact: after[fact] - before[fact] for fact in FACT_SOURCES} == expected
    summary = _xcom(run, "summary")
    assert {fact: summary["fact_versions_added"].get(fact, 0) for fact in FACT_SOURCES} == (
        expected
    )
    _assert_checked(stack)


def _rerunning_a_finished_run_reuses_its_execution_and_adds_nothing(stack: Stack) -> None:
    before_rows = _fact_rows(stack.warehouse)
    before_executions = set(_executions(stack))

    # Same logical date and run_after: dag.test re-creates the run under the same run id.
    run = _run(stack, *SECOND)
    assert run.state == "success"

    assert set(_executions(stack)) == before_executions
    assert _fact_rows(stack.warehouse) == before_rows
    _assert_checked(stack)


def _failed_warehouse_check_fails_the_run_and_alerts(stack: Stack) -> None:
    """A fact version recorded twice (as a batch loaded twice would leave it) fails the run at
    the check, emails, and leaves the warehouse assets without an event from this run."""
    read_alerts(stack.alerts_queue, wait_seconds=0)
    with psycopg.connect(**stack.warehouse.conninfo()) as conn:
        conn.execute(
            "INSERT INTO fact_sales_order (sales_order_id, created_date, created_time, "
            "last_updated_date, last_updated_time, sales_staff_id, counterparty_id, units_sold, "
            "unit_price, currency_id, design_id, agreed_payment_date, agreed_delivery_date, "
            "agreed_delivery_location_id, content_hash, batch_id, sequence, capture_seq, "
            "is_deleted) SELECT sales_order_id, created_date, created_time, last_updated_date, "
            "last_updated_time, sales_staff_id, counterparty_id, units_sold, unit_price, "
            "currency_id, design_id, agreed_payment_date, agreed_delivery_date, "
            "agreed_delivery_location_id, content_hash, batch_id, sequence, capture_seq, "
            "is_deleted FROM fact_sales_order ORDER BY sales_record_id DESC LIMIT 1"
        )

    started = time.monotonic()
    run = _run(stack, *BAD_WAREHOUSE)
    print(f"DAG run with a failing check: {time.monotonic() - started:.1f} s")
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "start_pipeline": "success",
        "wait_for_pipeline": "success",
        "warehouse_checks.dimension_keys": "success",
        "warehouse_checks.fact_references": "success",
        "warehouse_checks.current_views": "success",
        "warehouse_checks.fact_versions": "failed",
        "summary": "upstream_failed",
    }
    subject = "Terrific Totes pipeline task failed: totes_pipeline.warehouse_checks.fact_versions"
    alerts = _alerts_of(stack, run, {subject})
    assert {a["subject"] for a in alerts} == {subject}
    message = alerts[0]["message"]
    assert "warehouse check(s) failed: fact_sales_order_no_version_twice" in message
    assert f"Run:    {run.run_id}" in message
    assert not [name for name in _asset_events(run) if name.startswith("warehouse.")]
    assert _note(run) == (
        "**Failed** at `warehouse_checks.fact_versions`: "
        "the failure email and the task log say why."
    )


def _source_down_fails_the_run_and_alerts(stack: Stack) -> None:
    read_alerts(stack.alerts_queue, wait_seconds=0)  # start from an empty inbox
    stack.source_cluster.stop_server()
    try:
        run = _run(stack, *BROKEN)
    finally:
        stack.source_cluster.start()

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "start_pipeline": "success",
        "wait_for_pipeline": "failed",
        **dict.fromkeys(CHECK_TASKS, "upstream_failed"),
        "summary": "upstream_failed",
    }

    execution = _executions(stack)[execution_name(DAG_ID, run.run_id)]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SourceError"
    assert "cannot connect to the source database" in execution["cause"]

    expected = {
        "Terrific Totes pipeline failed",
        "Terrific Totes pipeline task failed: totes_pipeline.wait_for_pipeline",
    }
    alerts = _alerts_of(stack, run, expected)
    subjects = sorted({alert["subject"] for alert in alerts})
    assert subjects == sorted(expected)
    machine_alert = next(a["message"] for a in alerts if a["subject"] == subjects[0])
    assert f"Run: {run.run_id}" in machine_alert
    assert "Window: 2026-11-20T10:20:00+00:00 to 2026-11-20T10:40:00+00:00" in machine_alert
    assert "Error: SourceError" in machine_alert

    airflow_alert = next(a["message"] for a in alerts if a["subject"] == subjects[1])
    assert f"DAG:    {DAG_ID}" in airflow_alert
    assert f"Run:    {run.run_id}" in airflow_alert
    assert "Task:   wait_for_pipeline" in airflow_alert
    assert "Window: 2026-11-20 10:20:00+00:00 to 2026-11-20 10:40:00+00:00" in airflow_alert
    assert f"/dags/{DAG_ID}/runs/" in airflow_alert
    assert "SourceError: [extract] cannot connect to the source database" in airflow_alert
    assert "stackTrace" not in airflow_alert


# The rest runs the DAG the way its users do: Airflow standalone (scheduler, LocalExecutor, API
# server and UI) on the same metadata database and stack.

BACKFILL_FROM = "2026-11-20T11:00:00Z"
BACKFILL_TO = "2026-11-20T11:20:00Z"  # inclusive: the windows 11:00-11:20 and 11:20-11:40
# The task-state badge's icon for "success" in the Airflow 3 grid (a check mark).
SUCCESS_ICON = 'd="M20 6 9 17l-5-5"'


@dataclass
class Ui:
    base_url: str
    standalone: Any


def _api(ui: Ui, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (the local test server)
        f"{ui.base_url}/api/v2{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def _runs(ui: Ui) -> dict[str, dict[str, Any]]:
    listed = _api(ui, "GET", f"/dags/{DAG_ID}/dagRuns?limit=100")
    return {run["dag_run_id"]: run for run in listed["dag_runs"]}


def _wait_for_runs(ui: Ui, run_ids: set[str] | None, *, minimum: int = 0) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = _runs(ui)
        wanted = {k: v for k, v in runs.items() if run_ids is None or k in run_ids}
        if len(wanted) >= minimum and all(
            run["state"] in ("success", "failed") for run in wanted.values()
        ):
            return runs
        time.sleep(2)
    pytest.fail(f"runs did not finish: {_runs(ui)}; see {ui.standalone.log_path}")


@pytest.fixture
def ui(
    stack: Stack, moto_stack: MotoStack, airflow_metadata: DbSettings, tmp_path: Path
) -> Iterator[Ui]:
    from totes_dev.devstack.airflow import airflow_environment, standalone
    from totes_dev.devstack.postgres import free_port

    home = tmp_path / "airflow-standalone"
    env = {
        **moto_stack.env,
        **airflow_environment(home, airflow_metadata, api_port=free_port(), poke_seconds=1),
        **pipeline_environment(stack.deployment),
        # Every run is late: the scheduler and the triggerer handle the missed deadline.
        "TOTES_DEADLINE_SECONDS": "1",
    }
    started = time.monotonic()
    with standalone(env) as running:
        print(f"Airflow standalone up in {time.monotonic() - started:.1f} s")
        yield Ui(running.base_url, running)


def test_backfill_cleared_run_and_grid_in_airflow_standalone(
    stack: Stack, ui: Ui, tmp_path: Path
) -> None:
    """What a user does in the UI: a two-window backfill (unpausing also starts the latest
    scheduled window beside it), clearing a finished run, and looking at the grid."""
    # Unpausing also lets the scheduler start the latest window: a third run beside the
    # backfill, which must not duplicate anything either.
    assert _api(ui, "PATCH", f"/dags/{DAG_ID}", {"is_paused": False})["is_paused"] is False
    backfill = _api(
        ui,
        "POST",
        "/backfills",
        {
            "dag_id": DAG_ID,
            "from_date": BACKFILL_FROM,
            "to_date": BACKFILL_TO,
            "reprocess_behavior": "none",
            "max_active_runs": 1,
        },
    )
    assert backfill["dag_id"] == DAG_ID
    backfill_runs = {"backfill__2026-11-20T11:20:00+00:00", "backfill__2026-11-20T11:40:00+00:00"}
    _wait_for_runs(ui, backfill_runs, minimum=2)
    runs = _wait_for_runs(ui, None)
    assert {run_id: runs[run_id]["state"] for run_id in backfill_runs} == dict.fromkeys(
        backfill_runs, "success"
    )
    windows = sorted(
        (runs[r]["data_interval_start"], runs[r]["data_interval_end"]) for r in backfill_runs
    )
    assert windows == [
        ("2026-11-20T11:00:00Z", "2026-11-20T11:20:00Z"),
        ("2026-11-20T11:20:00Z", "2026-11-20T11:40:00Z"),
    ]
    # The warehouse equals the source, with no duplicated fact version and no record-id gap.
    _assert_checked(stack)
    rows = _fact_rows(stack.warehouse)
    assert rows["fact_sales_order"] > 0

    # Each run carries its summary as its note.
    for run_id in backfill_runs:
        note = _api(ui, "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["note"]
        assert "**Freshness**" in note, (run_id, note)
        assert "| table | loaded | versions added | quarantined |" in note

    # No run finished within its (one-second) deadline: Airflow's scheduler marked each missed
    # and the triggerer ran our callback, which published to the alerts topic.
    late = _late_alerts(stack, backfill_runs)
    assert set(late) == backfill_runs, f"late-run alerts: {late}; see {ui.standalone.log_path}"
    assert "Deadline: " in late["backfill__2026-11-20T11:20:00+00:00"]

    # A user clears a finished run: its tasks run again and find the run's execution.
    cleared_run = "backfill__2026-11-20T11:20:00+00:00"
    assert execution_name(DAG_ID, cleared_run) in set(_executions(stack))
    first_try = _api(ui, "GET", f"/dags/{DAG_ID}/dagRuns/{cleared_run}/taskInstances/summary")
    _api(
        ui,
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": cleared_run,
            "task_ids": ["start_pipeline"],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        summary = _api(ui, "GET", f"/dags/{DAG_ID}/dagRuns/{cleared_run}/taskInstances/summary")
        if summary["try_number"] > first_try["try_number"] and summary["state"] == "success":
            break
        time.sleep(2)
    else:
        pytest.fail(f"cleared run did not succeed again; see {ui.standalone.log_path}")
    # The scheduler may start the next window's run meanwhile (the test can cross a 20-minute
    # boundary), so what is compared is the cleared run's executions: still the one it had.
    again = execution_name(DAG_ID, cleared_run)
    assert {name for name in _executions(stack) if name.startswith(again)} == {again}
    assert _fact_rows(stack.warehouse) == rows
    _assert_checked(stack)

    # The grid, as a browser renders it, shows every task of the run as successful.
    from totes_dev.devstack.airflow import headless_chromium

    url = f"{ui.base_url}/dags/{DAG_ID}"
    dom = headless_chromium(
        url, profile=tmp_path / "dom-profile", extra=["--dump-dom"], budget_ms=20000
    )
    for task_id in ("start_pipeline", "wait_for_pipeline", "summary"):
        assert SUCCESS_ICON in _grid_cell(dom, cleared_run, task_id), task_id


def _late_alerts(stack: Stack, run_ids: set[str]) -> dict[str, str]:
    """Run id -> message of the late-run alerts about ``run_ids`` (60 s at most)."""
    late: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and set(late) != run_ids:
        for alert in read_alerts(stack.alerts_queue):
            if alert["subject"].startswith("Terrific Totes pipeline late"):
                for run_id in run_ids:
                    if f"Run:      {run_id}\n" in alert["message"]:
                        late[run_id] = alert["message"]
    return late


def _grid_cell(dom: str, run_id: str, task_id: str) -> str:
    """The grid cell (link and state badge) of one task instance."""
    marker = f'data-testid="grid-{run_id}-{task_id}"'
    start = dom.find(marker)
    assert start >= 0, f"grid has no cell for {run_id} {task_id}"
    end = dom.find("</a>", start)
    return dom[start:end]
