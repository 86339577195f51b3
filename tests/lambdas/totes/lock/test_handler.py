"""The lock Lambda's handler against moto: the events the state machine sends."""

from __future__ import annotations

import pytest

from totes.errors import CycleBusyError, SettingsError
from totes.lock.handler import lambda_handler


@pytest.fixture
def ingestion(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TOTES_INGESTION_URI", f"s3://{s3_bucket}/lake")
    return s3_bucket


def _acquire(holder: str, **extra: object) -> dict[str, object]:
    return lambda_handler(
        {"action": "acquire", "holder": holder, "ttl_seconds": 600, **extra}, None
    )


@pytest.mark.usefixtures("ingestion")
def test_acquire_and_release_as_the_state_machine_does() -> None:
    acquired = _acquire(
        "exec-1", execution_arn="arn:aws:states:eu-west-2:123456789012:execution:m:exec-1"
    )
    assert (acquired["holder"], acquired["epoch"]) == ("exec-1", 1)
    # The holder's execution does not exist for Step Functions: its status is unknown, so the
    # lease stands and the second execution is told who holds it.
    with pytest.raises(CycleBusyError, match="exec-1 holds the lock"):
        _acquire("exec-2")
    assert lambda_handler({"action": "release", "holder": "exec-2"}, None)["released"] is False
    assert lambda_handler({"action": "release", "holder": "exec-1"}, None)["released"] is True
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
        lambda_handler(event, None)
