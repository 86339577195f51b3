"""The state machine definition (infra/state_machine.asl.json): what each state retries, where
every failure goes, and the cycle lock around the stages. The same file Terraform renders and the
local stack deploys (tests/infra/test_terraform.py compares them)."""

from __future__ import annotations

import json
from typing import Any

from totes_dev.devstack.deploy import STATE_MACHINE_TEMPLATE


def test_missing_input_fields_get_defaults_before_any_state_reads_them() -> None:
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    states = definition["States"]
    assert definition["StartAt"] == "Defaults"
    assert states["Defaults"]["Parameters"]["defaults"] == {
        "run_id.$": "$$.Execution.Name",
        "window_start": None,
        "window_end": None,
        "full_scan": False,
    }
    assert states["Defaults"]["Next"] == "WithDefaults"
    merged = states["WithDefaults"]["Parameters"]["input.$"]
    assert merged == "States.JsonMerge($.defaults, $.given, false)"  # what was given wins
    assert states["WithDefaults"]["Next"] == "AcquireLock"
    # The output carries the window asked for, and the extract's report the window it used.
    summary = states["Summary"]["Parameters"]
    assert summary["window_start.$"] == "$.window_start"
    assert summary["extract.$"] == "$.extract"


def test_state_machine_retries_transient_errors_and_alerts_before_failing() -> None:
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    states = definition["States"]
    transient = {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
    tasks = {name: states[name] for name in ("Transform", "Load")}
    tasks.update(_extract_tasks(states["Extract"]))
    assert set(tasks) == {
        "Transform",
        "Load",
        "HoldSnapshot",
        "AwaitPlan",
        "ExtractTable",
        "CommitBatch",
    }
    for name, task in tasks.items():
        retried = {e for retry in task["Retry"] for e in retry["ErrorEquals"]}
        assert retried == transient, name
        assert all(retry["BackoffRate"] > 1 for retry in task["Retry"])
    # A lost commit race is retried at once by the extract, the only stage that can lose one (a
    # transform carries on from the winner's batch; the load is serialised by the ledger). The
    # retry is of the whole fan-out: a new attempt id, hence a new plan and batch.
    assert [r["ErrorEquals"] for r in states["Extract"]["Retry"]] == [["CommitConflictError"]]
    assert states["Extract"]["Parameters"]["attempt.$"] == "States.UUID()"
    for stage in ("Extract", "Transform", "Load"):
        assert states[stage]["Catch"] == [
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": "$.error",
                "Next": "ReleaseLockAfterFailure",
            }
        ]
    assert states["ReleaseLockAfterFailure"]["Next"] == "NotifyFailure"
    assert states["ReleaseLockAfterFailure"]["ResultPath"] is None  # keeps $.error
    assert states["NotifyFailure"]["Resource"] == "arn:aws:states:::sns:publish"
    assert states["NotifyFailure"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail"


def _extract_tasks(parallel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state inside the extract's branches and its Map state."""
    found: dict[str, dict[str, Any]] = {}
    pending = [branch["States"] for branch in parallel["Branches"]]
    while pending:
        for name, state in pending.pop().items():
            if state["Type"] == "Task":
                found[name] = state
            elif state["Type"] == "Map":
                pending.append(state["ItemProcessor"]["States"])
    return found


def test_extract_fans_out_over_tables_inside_one_exported_snapshot() -> None:
    states = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))["States"]
    extract = states["Extract"]
    assert extract["Type"] == "Parallel"
    holder, work = extract["Branches"]
    hold = holder["States"]["HoldSnapshot"]
    assert hold["Parameters"]["action"] == "hold_snapshot"
    # It lets go of the snapshot once its own execution has ended (the other branch failed).
    assert hold["Parameters"]["execution_arn.$"] == "$$.Execution.Id"
    assert work["StartAt"] == "AwaitPlan"
    # So does the step waiting for the plan, should the holder fail without writing one.
    assert work["States"]["AwaitPlan"]["Parameters"]["execution_arn.$"] == "$$.Execution.Id"
    assert work["States"]["AwaitPlan"]["Next"] == "ExtractTables"
    fan = work["States"]["ExtractTables"]
    assert fan["Type"] == "Map"
    assert fan["ItemsPath"] == "$.plan.tables"
    assert fan["ItemSelector"]["table.$"] == "$$.Map.Item.Value"
    assert 1 < fan["MaxConcurrency"] <= 11  # bounded: each worker is a source connection
    assert fan["Next"] == "CommitBatch"
    assert work["States"]["CommitBatch"]["Parameters"]["parts.$"] == "$.parts"
    tasks = _extract_tasks(extract)
    assert {t["Resource"] for t in tasks.values()} == {"${extract_function_arn}"}
    assert {t["Parameters"]["attempt.$"] for t in tasks.values() if "Parameters" in t} == {
        "$.attempt"
    }
    assert fan["ItemSelector"]["attempt.$"] == "$.attempt"
    # The commit's summary is the extract's result, where the later states read it.
    assert extract["ResultSelector"]["summary.$"] == "$[1]"
    assert states[extract["Next"]]["InputPath"] == f"{extract['ResultPath']}.summary"
    assert states[extract["Next"]]["ResultPath"] == "$.extract"
    assert states[extract["Next"]]["Next"] == "Transform"


def test_state_machine_holds_the_cycle_lock_around_the_stages() -> None:
    definition = json.loads(STATE_MACHINE_TEMPLATE.read_text(encoding="utf-8"))
    states = definition["States"]
    acquire = states["AcquireLock"]
    assert acquire["Resource"] == "${lock_function_arn}"
    # The lease lasts as long as an execution may run.
    assert acquire["Parameters"]["ttl_seconds"] == definition["TimeoutSeconds"]
    # Being busy is an answer the state machine branches on, not an error to retry.
    assert acquire["Next"] == "LockAcquired"
    assert all("CycleBusyError" not in r["ErrorEquals"] for r in acquire["Retry"])
    assert states["LockAcquired"]["Choices"] == [
        {"Variable": "$.lock.acquired", "BooleanEquals": True, "Next": "Extract"}
    ]
    assert states["LockAcquired"]["Default"] == "AnotherCycleRunning"
    skipped = states["AnotherCycleRunning"]
    assert skipped["Parameters"]["skipped"] is True
    assert skipped["Parameters"]["skipped_reason.$"] == "$.lock.reason"
    assert skipped["End"] is True
    assert states["Load"]["Next"] == "ReleaseLock"
    assert states["ReleaseLock"]["Next"] == "Summary"
    for release in ("ReleaseLock", "ReleaseLockAfterFailure"):
        assert states[release]["Parameters"] == {
            "action": "release",
            "holder.$": "$$.Execution.Name",
        }
