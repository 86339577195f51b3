"""``totes demo`` (``make demo``): the whole product on this machine, from nothing to a summary.

It brings up the local stack (a throwaway PostgreSQL unless PG_* point at a server, and moto for
AWS with the state machine and the three real stage handlers), generates a totesys source, runs
the Airflow DAG once (``dag.test()``, the code path of ``airflow dags test``) through Step
Functions into the warehouse, simulates activity with ``totes source simulate``, runs the DAG for
the next window, tears everything down and prints, last, rows per warehouse table, the fact
versions the second run added and the ``totes check`` verdict. Logs go to a file it names.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from totes.contracts.warehouse import FACTS, LOAD_ORDER
from totes.observability import log_to

DAG_ID = "totes_pipeline"
WAREHOUSE_TABLES = tuple(table.name for table in LOAD_ORDER)
FACT_SOURCES = {fact.name: str(fact.source) for fact in FACTS}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the product end to end on a local stack",
        description="Start a throwaway PostgreSQL and moto, generate a totesys source, run the "
        "Airflow DAG twice through Step Functions into the warehouse with simulated activity "
        "in between, then print a summary and tear everything down. The pipeline's own logs "
        "go to a log file (named at the start), or to stderr with --verbose.",
    )
    demo.add_argument("--scale", type=float, default=1.0, help="generated data scale (1 = real)")
    demo.add_argument("--seed", type=int, default=1, help="generator and simulator seed")
    demo.add_argument("--minutes", type=int, default=120, help="simulated activity between runs")
    demo.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="where the pipeline's log lines go (default: a new totes-demo-*.log in the temp "
        "folder, named when the demo starts)",
    )
    demo.add_argument("--verbose", action="store_true", help="show the log lines on stderr")
    demo.set_defaults(handler=_demo)


class _Narrator:
    """The demo's own lines, on the terminal whatever the pipeline's output is sent to."""

    def __init__(self) -> None:
        self.out = sys.stdout
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=self.out, flush=True)

    def table(self, lines: list[str]) -> None:
        print("\n".join(lines), file=self.out, flush=True)


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


def _quiet_airflow(home: Path) -> None:
    """Airflow's own chatter (deprecations inside its test client, the test runner's waits)
    says nothing a demo user can act on; errors still show."""
    import warnings

    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from totes_dev.devstack.airflow import configure_test_process

    configure_test_process(home)


def _demo(args: argparse.Namespace) -> int:
    narrator = _Narrator()
    home = Path(tempfile.mkdtemp(prefix="totes-demo-airflow-"))
    # Airflow reads its configuration on import: point it at a throwaway home first.
    _quiet_airflow(home)
    os.environ["TOTES_POKE_SECONDS"] = "1"
    os.environ["TOTES_AWS_CONN_ID"] = ""
    # dag.test() cannot run a DAG that has a deadline alert (PipelineConfig.deadline).
    os.environ["TOTES_DEADLINE_SECONDS"] = "0"
    with contextlib.ExitStack() as stack:
        if args.verbose:
            log_to(sys.stderr)
        else:
            if args.log_file is None:
                handle, name = tempfile.mkstemp(prefix="totes-demo-", suffix=".log")
                os.close(handle)
                args.log_file = Path(name)
            log_file = stack.enter_context(args.log_file.open("w", encoding="utf-8"))
            log_to(log_file)
            # Metrics lines (EMF) are printed to stdout, as Lambda expects: the log file here.
            stack.enter_context(contextlib.redirect_stdout(log_file))
            narrator.say(f"pipeline logs: {args.log_file}")
        stack.callback(log_to, None)
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        outcome = _run(args, narrator)
    narrator.table(outcome.summary)
    return 0 if outcome.consistent else 1


@dataclass
class _Outcome:
    summary: list[str]
    consistent: bool


def _run(args: argparse.Namespace, narrator: _Narrator) -> _Outcome:
    from totes.check.check import check
    from totes.check.reconcile import format_report
    from totes_dev.devstack.airflow import (
        DAGS_FOLDER,
        pipeline_environment,
        prepare_databases,
        use_metadata_database,
    )
    from totes_dev.devstack.aws import moto_server
    from totes_dev.devstack.deploy import database_environment, deploy
    from totes_dev.devstack.postgres import postgres_server
    from totes_dev.source.simulate import simulate

    with postgres_server() as admin, moto_server() as moto:
        narrator.say(f"PostgreSQL at {admin.host}:{admin.port}, moto (AWS) at {moto.endpoint}")
        source, warehouse = prepare_databases(
            admin, prefix="totes_demo", scale=args.scale, seed=args.seed
        )
        source_rows = _source_rows(source)
        narrator.say(
            f"generated a totesys source at scale {args.scale:g} (seed {args.seed}): "
            f"{sum(source_rows.values()):,} rows"
        )
        deployment = deploy(database_environment(source, warehouse))
        os.environ.update(pipeline_environment(deployment))
        narrator.say("deployed the buckets, the four Lambdas and the state machine to moto")
        use_metadata_database(admin, "totes_demo_airflow")
        narrator.say("Airflow metadata database migrated")

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
        narrator.say(f"DAG run 1 ({first.run_id}) loaded the source")

        changes = simulate(
            source, minutes=args.minutes, seed=args.seed, silent_edits=True, deletes=False
        )
        changed_at = time.monotonic()
        changed = {
            kind: sum(len(ids) for ids in tables.values())
            for kind, tables in changes.items()
            if kind != "now"
        }
        narrator.say(f"simulated {args.minutes} minutes of source activity: {json.dumps(changed)}")

        second = _dag_run(dag, first_end + timedelta(minutes=20), full_scan=True)
        delivered_after = time.monotonic() - changed_at
        after_second = _warehouse_rows(warehouse)
        narrator.say(f"DAG run 2 ({second.run_id}, full scan) delivered them")

        report = check(source, warehouse)
        from airflow import settings

        settings.dispose_orm(do_log=False)  # before the throwaway PostgreSQL stops
    narrator.say("local stack torn down")

    added = {
        table: after_second[table] - after_first[table]
        for table in WAREHOUSE_TABLES
        if table.startswith("fact_")
    }
    expected = {
        fact: sum(
            len(changes[kind].get(table, [])) for kind in ("inserted", "updated", "silent_edits")
        )
        for fact, table in FACT_SOURCES.items()
    }
    summary = ["", f"{'source table':<22}{'rows':>12}"]
    summary += [f"{table:<22}{rows:>12,}" for table, rows in source_rows.items()]
    summary += ["", f"{'warehouse table':<22}{'after run 1':>12}{'after run 2':>12}"]
    summary += [
        f"{table:<22}{after_first[table]:>12,}{after_second[table]:>12,}"
        for table in WAREHOUSE_TABLES
    ]
    summary += [
        "",
        f"fact versions added by run 2: {json.dumps(added)}",
        f"versions the simulation made:  {json.dumps(expected)}",
        # What the demo did, not the schedule: the changes were made, then run 2 was started
        # at once; on the 20-minute schedule a change waits for the next run as well.
        f"freshness: the simulated changes reached the warehouse {delivered_after:.0f} s after "
        "they were made (target: within 1800 s)",
        f"totes check: {'consistent' if report.ok else 'DIFFERENCES'}",
    ]
    if not report.ok:
        summary.append(format_report(report))
    return _Outcome(summary, report.ok)
