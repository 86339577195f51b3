"""The state machine definition (infra/state_machine.asl.json): what each state retries, where
every failure goes, and the cycle lock around the stages. The same file Terraform renders and the
local stack deploys (tests/infra/test_terraform.py compares them)."""

from __future__ import annotations

import json

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
    for stage in ("Extract", "Transform", "Load"):
        retried = {e for retry in states[stage]["Retry"] for e in retry["ErrorEquals"]}
        # A lost commit race is retried at once by the extract, the only stage that can lose one
        # (a transform carries on from the winner's batch; the load is serialised by the ledger).
        assert retried == transient | ({"CommitConflictError"} if stage == "Extract" else set())
        assert all(retry["BackoffRate"] > 1 for retry in states[stage]["Retry"])
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
