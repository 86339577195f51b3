"""The Terrific Totes pipeline DAG: every 20 minutes, run the extract -> transform -> load state
machine for the last 20-minute window and report what it did.

A composition root only: operators and logic live in ``plugins/totes_airflow``. Parsing this file
touches neither AWS nor the metadata database (ARNs are templates rendered at run time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, task

from totes_airflow.alerts import failure_notifier
from totes_airflow.assets import PipelineAssets, warehouse_extras
from totes_airflow.config import ALERTS_TOPIC_VARIABLE, PIPELINE_INPUT, PipelineConfig
from totes_airflow.deadlines import freshness_deadline
from totes_airflow.operators import (
    IdempotentStepFunctionStartExecutionOperator,
    StepFunctionExecutionFailureSensor,
    WarehouseCheckOperator,
)
from totes_airflow.summary import (
    NEWEST_CHANGE_SQL,
    NOTE_XCOM_KEY,
    format_note,
    format_summary,
    summarise,
)
from totes_airflow.warehouse_checks import CHECK_GROUPS, ONE_ROW

DAG_ID = "totes_pipeline"

DOC_MD = """
# Terrific Totes pipeline

Every 20 minutes this DAG starts the **Step Functions** state machine `totes-<env>-pipeline`,
which takes the cycle lock and runs three Lambdas in order:

1. **extract** copies what changed in `totesys` into the ingestion lake (Parquet on S3);
2. **transform** turns pending ingestion batches into the star schema's processed Parquet;
3. **load** merges pending processed batches into the warehouse, keeping every fact version.

Each stage processes *everything still pending*, so a retried, repeated or late run converges to
the same lake and warehouse; no fact version is ever added twice.

| task | what it does |
|---|---|
| `start_pipeline` | starts the execution for the run's window, or reuses the run's execution |
| `wait_for_pipeline` | waits for the execution; fails with its error and cause; lake asset events |
| `warehouse_checks.*` | keys unique and present, references resolve, one current row, no repeat |
| `summary` | rows per table, quarantined rows, freshness: run note, XCom, warehouse asset events |

**Schedule and freshness.** A source change must reach the warehouse within 30 minutes. A run
for the window `[T-20 min, T)` starts at `T` and reads everything changed since the previous run
read the source (at `T-20 min`). The oldest change it delivers therefore waited
`20 min + run time`; with a run time under 10 minutes (the state machine times out at 50, a
normal run takes a few minutes) that is within 30. `max_active_runs=1` keeps runs from
overlapping; `catchup=False` skips windows missed while paused, which is safe because the next
run picks up everything pending anyway. A run not finished 10 minutes after it was queued misses
its **deadline** and an email is sent ("pipeline late"). The `summary` task reports the measured
freshness (how far the newest source change in the warehouse is behind) on the run's note.

**Assets.** `totesys` feeds the ingestion and processed lakes (events from `wait_for_pipeline`,
with the rows each stage wrote) and the warehouse tables (events from `summary`, only after the
warehouse checks passed, so a DAG scheduled on a warehouse table never starts on unchecked data).

## Runbook

**A failure email arrived.** It names the DAG, run, task, window and a log link; the state
machine sends its own email with the Lambda error. Open the log, then:

* *A warehouse check failed* (`warehouse_checks.*`; the email names the check): the data was
  loaded but breaks an invariant, and the warehouse assets were not updated. The task log has
  the check's SQL; run it to see the rows. `totes check` compares the warehouse with the source.

* *Source or warehouse unreachable, credentials rejected*: fix the database or the secret
  (`totes/<env>/source-db`, `totes/<env>/warehouse-db` in Secrets Manager). Nothing else is
  needed: the next scheduled run processes everything the failed run did not.
* *A data error* (the message names step, table and key): fix the cause, then re-run as below.
* Transient AWS errors are already retried by the state machine and by Airflow (task retries
  with exponential backoff); an email means the retries ran out.

**Re-run a run.** Clear `start_pipeline` for that run (Grid -> task -> Clear, with downstream).
The task finds the run's execution by name: if it is running or succeeded it is reused; if it
failed a fresh execution `...-r2` is started (not a Step Functions redrive: a failed execution of
this machine ends in its Fail state after alerting, and a redrive would resume there and fail
again). Re-running a finished run adds no duplicate fact version.

**Backfill.** UI: *Trigger -> Backfill*, or
`airflow backfill create --dag-id totes_pipeline --from-date 2026-01-01T00:00 --to-date
2026-01-01T02:00`. Each run gets its own window and processes what is pending; re-running an
already loaded window adds nothing.

**A run says "Run skipped".** Another cycle (a manual Step Functions execution, a `totes run`,
a replay) held the cycle lock for the whole wait of about 6 minutes. It is doing the same work,
so nothing is lost; the summary names the holder. If the holder is gone (a killed process),
`totes lock break --yes` releases its lease; an aborted execution's lease ends by itself.

**Full scan.** Trigger with `{"full_scan": true}` (the trigger form has a checkbox) to make extract
compare every source row, catching edits made without touching `last_updated` and deletes.

**Inspect an execution.** The `start_pipeline` task has links to the state machine and to the
execution in the AWS console; the execution's name is the DAG id and run id with `:` and `+`
replaced and a short hash appended.
"""

config = PipelineConfig.from_env()
assets = PipelineAssets.for_environment(config.names)
EXECUTION_ARN = "{{ ti.xcom_pull(task_ids='start_pipeline') }}"

with DAG(
    dag_id=DAG_ID,
    description="totesys -> data lake -> warehouse every 20 minutes (Step Functions)",
    # A cron string alone gives zero-length intervals in Airflow 3; each run needs its window.
    schedule=CronDataIntervalTimetable("*/20 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    deadline=None
    if config.deadline is None
    else freshness_deadline(
        interval=config.deadline,
        topic_variable=ALERTS_TOPIC_VARIABLE,
        default_topic_arn=config.default_alerts_topic_arn,
        aws_conn_id=config.aws_conn_id,
    ),
    doc_md=DOC_MD,
    tags=["totes", "etl", "step-functions"],
    params={
        "full_scan": Param(
            False,
            type="boolean",
            description="Compare every source row (finds silent edits and deletes).",
        )
    },
    default_args={
        "owner": "data-engineering",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=5),
        "aws_conn_id": config.aws_conn_id,
        "on_failure_callback": [
            failure_notifier(topic_arn=config.alerts_topic_arn, aws_conn_id=config.aws_conn_id)
        ],
    },
) as dag:
    start_pipeline = IdempotentStepFunctionStartExecutionOperator(
        task_id="start_pipeline",
        state_machine_arn=config.state_machine_arn,
        state_machine_input=PIPELINE_INPUT,
    )

    # Reschedule mode frees the worker slot between pokes (docs/orchestration.md weighs it
    # against deferring).
    wait_for_pipeline = StepFunctionExecutionFailureSensor(
        task_id="wait_for_pipeline",
        execution_arn=EXECUTION_ARN,
        mode="reschedule",
        poke_interval=config.poke_seconds,
        timeout=timedelta(minutes=55).total_seconds(),
        inlets=[assets.source],
        lakes=(assets.ingestion_lake, assets.processed_lake),
    )

    with TaskGroup("warehouse_checks", tooltip="invariants of the loaded warehouse") as checks:
        for group, group_checks in CHECK_GROUPS.items():
            WarehouseCheckOperator(
                task_id=group,
                conn_id=config.warehouse_conn_id,
                table=ONE_ROW,
                checks=group_checks,
            )

    @task(task_id="summary", inlets=[assets.processed_lake], outlets=assets.warehouse_tables)
    def summary(**context: Any) -> dict[str, Any]:
        import logging

        from airflow.providers.postgres.hooks.postgres import PostgresHook

        output = context["ti"].xcom_pull(task_ids="wait_for_pipeline", key="output")
        warehouse = PostgresHook(postgres_conn_id=config.warehouse_conn_id)
        newest_change = warehouse.get_first(NEWEST_CHANGE_SQL)[0]
        result = summarise(output, newest_change)
        log = logging.getLogger("airflow.task")
        log.info("Pipeline run summary\n%s", format_summary(result))
        if result["skipped"]:
            log.warning("Run skipped: %s", result["skipped_reason"])
        elif not result["within_freshness_target"]:
            log.warning(
                "Freshness target missed: %s s > %s s",
                result["freshness_lag_seconds"],
                result["freshness_target_seconds"],
            )
        for table, extra in warehouse_extras(result).items():
            context["outlet_events"][assets.warehouse[table]].extra = extra
        context["ti"].xcom_push(key=NOTE_XCOM_KEY, value=format_note(result))
        return result

    start_pipeline >> wait_for_pipeline >> checks >> summary()
