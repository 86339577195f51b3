"""``totes demo`` (``make demo``): the whole product on this machine, from nothing to a summary.

It brings up the local stack (a throwaway PostgreSQL unless PG_* point at a server, and moto for
AWS with the state machine and the three real stage handlers), generates a totesys source, runs
the Airflow DAG once (``dag.test()``, the code path of ``airflow dags test``) through Step
Functions into the warehouse, simulates activity with ``totes source simulate``, runs the DAG for
the next window, and prints rows per warehouse table, the fact versions the second run added and
the ``totes check`` verdict. Then everything is torn down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from totes.contracts.warehouse import LOAD_ORDER
from totes.transform.rules import FACT_SOURCES

DAG_ID = "totes_pipeline"
WAREHOUSE_TABLES = tuple(table.name for table in LOAD_ORDER)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="run the product end to end on a local stack")
    demo.add_argument("--scale", type=float, default=1.0, help="generated data scale (1 = real)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--minutes", type=int, default=120, help="simulated activity between runs")
    demo.set_defaults(handler=_demo)


def _say(message: str, started: float) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)


def _warehouse_rows(warehouse: Any) -> dict[str, int]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**warehouse.conninfo()) as conn:
        return {
            table: int(
                conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()[0]  # type: ignore[index]
            )
            for table in WAREHOUSE_TABLES
        }


def _source_rows(source: Any) -> dict[str, int]:
    import psycopg

    from totes_dev.source.schema import row_counts

    with psycopg.connect(**source.conninfo()) as conn:
        return row_counts(conn)


def _dag_run(dag: Any, interval_end: datetime, *, full_scan: bool) -> Any:
    """One DAG run for the 20-minute window ending at ``interval_end``.

    With a data-interval timetable the logical date is the end of the interval."""
    run = dag.test(
        logical_date=interval_end,
        run_after=interval_end + timedelta(seconds=30),
        run_conf={"full_scan": full_scan},
    )
    if run.state != "success":
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        raise SystemExit(f"DAG run {run.run_id} ended {run.state}: {states}")
    return run


def _demo(args: argparse.Namespace) -> int:
    # Airflow reads its configuration on import: point it at a throwaway home first.
    from totes_dev.devstack.airflow import (
        DAGS_FOLDER,
        configure_test_process,
        pipeline_environment,
        prepare_databases,
        use_metadata_database,
    )

    home = Path(tempfile.mkdtemp(prefix="totes-demo-airflow-"))
    configure_test_process(home)
    os.environ["TOTES_POKE_SECONDS"] = "1"
    # The task logs stay in Airflow; the demo prints its own summary.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ["TOTES_AWS_CONN_ID"] = ""

    from totes.check.check import check
    from totes.check.reconcile import format_report
    from totes_dev.devstack.aws import moto_server
    from totes_dev.devstack.deploy import database_environment, deploy
    from totes_dev.devstack.postgres import postgres_server
    from totes_dev.source.simulate import simulate

    started = time.monotonic()
    try:
        with postgres_server() as admin, moto_server() as moto:
            _say(f"PostgreSQL at {admin.host}:{admin.port}, moto (AWS) at {moto.endpoint}", started)
            source, warehouse = prepare_databases(
                admin, prefix="totes_demo", scale=args.scale, seed=args.seed
            )
            _say(f"generated totesys source at scale {args.scale:g} (seed {args.seed})", started)
            print(f"{'source table':<22}{'rows':>12}")
            for table, rows in _source_rows(source).items():
                print(f"{table:<22}{rows:>12,}")
            deployment = deploy(database_environment(source, warehouse))
            os.environ.update(pipeline_environment(deployment))
            _say(f"deployed state machine {deployment.state_machine_arn}", started)
            use_metadata_database(admin, "totes_demo_airflow")
            _say("Airflow metadata database migrated", started)

            from airflow.dag_processing.dagbag import DagBag

            bag = DagBag(dag_folder=str(DAGS_FOLDER / "totes_pipeline.py"))
            if bag.import_errors:
                raise SystemExit(f"the DAG does not import: {bag.import_errors}")
            dag = bag.dags[DAG_ID]

            now = datetime.now(UTC).replace(second=0, microsecond=0)
            # The two most recent 20-minute windows, as the schedule would have run them.
            first_end = now - timedelta(minutes=now.minute % 20 + 20)
            first = _dag_run(dag, first_end, full_scan=False)
            after_first = _warehouse_rows(warehouse)
            _say(f"DAG run 1 ({first.run_id}) succeeded", started)

            changes = simulate(
                source, minutes=args.minutes, seed=args.seed, silent_edits=True, deletes=False
            )
            changed = {
                kind: {table: len(ids) for table, ids in tables.items()}
                for kind, tables in changes.items()
                if kind != "now"
            }
            _say(f"simulated {args.minutes} minutes of activity: {json.dumps(changed)}", started)

            second = _dag_run(dag, first_end + timedelta(minutes=20), full_scan=True)
            after_second = _warehouse_rows(warehouse)
            _say(f"DAG run 2 ({second.run_id}, full scan) succeeded", started)

            report = check(source, warehouse)
            print()
            print(f"{'warehouse table':<22}{'after run 1':>12}{'after run 2':>12}")
            for table in WAREHOUSE_TABLES:
                print(f"{table:<22}{after_first[table]:>12,}{after_second[table]:>12,}")
            added = {
                table: after_second[table] - after_first[table]
                for table in WAREHOUSE_TABLES
                if table.startswith("fact_")
            }
            expected = {
                fact: sum(
                    len(changes[kind].get(table, []))
                    for kind in ("inserted", "updated", "silent_edits")
                )
                for fact, table in FACT_SOURCES.items()
            }
            print(f"\nfact versions added by run 2: {json.dumps(added)}")
            print(f"versions the simulation made:  {json.dumps(expected)}")
            print(f"totes check: {'consistent' if report.ok else 'DIFFERENCES'}")
            if not report.ok:
                print(format_report(report))
            _say("done; tearing the local stack down", started)
            from airflow import settings

            settings.dispose_orm(do_log=False)  # before the throwaway PostgreSQL stops
            return 0 if report.ok else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
