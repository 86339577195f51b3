"""A whole first cycle through the state machine on the local stack: moto's Step Functions runs
our definition (the extract's snapshot holder and its ``Map`` of one worker per table, then the
transform and the load), each task invoking the real handler in this process.

This is the product's path end to end at a generated scale, timed from the start of the execution
to its end, with the ``Map`` state's iterations counted from the execution history. The Lambda
functions share this one process here, so the per-invocation memory comes from
:mod:`benchmarks.fanout`, which runs each worker in a process of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import Any

from benchmarks.common import drop_database, new_database
from totes.load.migrations import migrate
from totes.naming import ResourceNames
from totes.settings import DbSettings

TIMEOUT_SECONDS = 1800


def measure_state_machine(admin: DbSettings, source: DbSettings) -> dict[str, Any]:
    """Deploy to a fresh moto server, run one execution over ``source``, report it."""
    import boto3

    from totes_dev.devstack.aws import moto_server
    from totes_dev.devstack.deploy import database_environment, deploy

    warehouse = new_database(admin, "smwh")
    try:
        migrate(warehouse)
        # The handlers run in this process, and their metrics (one JSON line each, for
        # CloudWatch) would bury the bench's progress lines; their logs go to the bench's log.
        with moto_server(), open(os.devnull, "w") as metrics, contextlib.redirect_stdout(metrics):
            deployment = deploy(
                database_environment(source, warehouse),
                ResourceNames(environment=f"b{uuid.uuid4().hex[:6]}"),
            )
            sfn = boto3.client("stepfunctions")
            started = time.perf_counter()
            arn = sfn.start_execution(
                stateMachineArn=deployment.state_machine_arn,
                name="bench-first-cycle",
                input=json.dumps({"run_id": "bench-first-cycle", "full_scan": True}),
            )["executionArn"]
            while True:
                described = sfn.describe_execution(executionArn=arn)
                if described["status"] != "RUNNING":
                    break
                if time.perf_counter() - started > TIMEOUT_SECONDS:
                    raise RuntimeError(f"the execution ran past {TIMEOUT_SECONDS} s")
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(
                    f"the execution ended {described['status']}: {described.get('error')} "
                    f"{str(described.get('cause'))[:2000]}"
                )
            pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
            events = [event for page in pages for event in page["events"]]
    finally:
        drop_database(admin, warehouse)
    output = json.loads(described["output"])
    return {
        "seconds": seconds,
        "map_iterations": sum(e["type"] == "MapIterationSucceeded" for e in events),
        "extracted_rows": sum(output["extract"]["rows"].values()),
        "loaded_rows": sum(output["load"]["rows"].values()),
        "state_seconds": state_seconds(events, ("Extract", "Transform", "Load")),
    }


def state_seconds(events: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, float]:
    """Seconds from entering to leaving each named state, from the execution history."""
    entered: dict[str, Any] = {}
    spent: dict[str, float] = {}
    for event in events:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details or details.get("name") not in names:
            continue
        name = details["name"]
        if event["type"].endswith("StateEntered"):
            entered[name] = event["timestamp"]
        elif name in entered:
            spent[name] = round((event["timestamp"] - entered[name]).total_seconds(), 3)
    return spent
