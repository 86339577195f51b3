"""The lock Lambda's handler against moto: the events the state machine sends."""

from __future__ import annotations

import time

import pytest

from totes.errors import SettingsError
from totes.lock.handler import lambda_handler
from totes_dev.devstack.aws import LambdaContext

lambda_context = LambdaContext("totes-test-lock")


@pytest.fixture
def ingestion(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TOTES_INGESTION_URI", f"s3://{s3_bucket}/lake")
    monkeypatch.setenv("TOTES_LOCK_WAIT_SECONDS", "0.5")
    return s3_bucket


def _acquire(holder: str, **extra: object) -> dict[str, object]:
    return lambda_handler(
        {"action": "acquire", "holder": holder, "ttl_seconds": 600, **extra}, lambda_context
    )


def _release(holder: str) -> dict[str, object]:
    return lambda_handler({"action": "release", "holder": holder}, lambda_context)


@pytest.mark.usefixtures("ingestion")
def test_acquire_and_release_as_the_state_machine_does() -> None:
    arn = "arn:aws:states:eu-west-2:123456789012:execution:m:exec-1"
    acquired = _acquire("exec-1", execution_arn=arn)
    assert (acquired["holder"], acquired["acquired"], acquired["epoch"]) == ("exec-1", True, 1)
    # The holder's execution does not exist for Step Functions: its status is unknown, so the
    # lease stands and the second execution, after its wait, is told who holds it.
    started = time.monotonic()
    busy = _acquire("exec-2")
    # It waited (at least one retry), then gave up long before the 600 s lease would end; the
    # upper bound leaves room for a slow Step Functions answer on a busy machine (7 s seen).
    assert 0.4 < time.monotonic() - started < 60
    assert busy["acquired"] is False
    assert "another cycle is running: exec-1 holds the lock" in str(busy["reason"])
    assert _release("exec-2")["released"] is False
    assert _release("exec-1")["released"] is True
    assert _acquire("exec-2")["epoch"] == 3


@pytest.mark.usefixtures("ingestion")
@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"action": "acquire", "holder": "x"}, "ttl_seconds"),
        ({"action": "acquire", "holder": "x", "ttl_seconds": "600"}, "ttl_seconds"),
        ({"action": "acquire", "ttl_seconds": 600}, "holder"),
        ({"action": "steal", "holder": "x"}, "action"),
    ],
)
def test_malformed_events_are_refused_naming_the_field(
    event: dict[str, object], field: str
) -> None:
    with pytest.raises(SettingsError, match=f"lock event field {field}"):
        lambda_handler(event, lambda_context)
