from __future__ import annotations

from datetime import UTC, datetime

import pytest

from totes.errors import SettingsError, SourceError
from totes.extract import handler
from totes.lake import S3Lake, get_json
from totes.runtime import reset_container
from totes.settings import DbSettings
from totes_dev.devstack.aws import LambdaContext

lambda_context = LambdaContext("totes-test-extract")


@pytest.fixture
def configured(source_feb: DbSettings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "PG_HOST": source_feb.host,
        "PG_PORT": str(source_feb.port),
        "PG_USER": source_feb.user,
        "PG_PASSWORD": source_feb.password,
        "PG_DATABASE": source_feb.database,
        "TOTES_INGESTION_URI": f"s3://{s3_bucket}/ingestion",
        "TOTES_FULL_SCAN_CADENCE": "on-demand",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOTES_SOURCE_SECRET_ID", raising=False)
    return s3_bucket


ATTEMPT = "0f8e2f0c-6a0e-4a57-9a43-2f0d7bd3f1a2"
EVENT = {
    "run_id": "scheduled__2024-02-23T23:40:00+00:00",
    "window_start": "2024-02-23T23:40:00Z",
    "window_end": "2024-02-24T00:00:00Z",
    "full_scan": False,
}


def test_handler_lands_a_batch_then_finds_nothing_new(configured: str) -> None:
    first = handler.lambda_handler(EVENT, lambda_context)
    assert first["batch_id"] is not None
    assert first["rows"]["sales_order"] == 6941
    assert first["window_end"] == "2024-02-24T00:00:00+00:00"
    manifest = get_json(S3Lake(configured, "ingestion"), first["manifest_key"])
    assert manifest["run_id"] == EVENT["run_id"]
    assert manifest["window_start"] == "2024-02-23T23:40:00+00:00"
    again = handler.lambda_handler(EVENT, lambda_context)
    assert (again["batch_id"], again["manifest_key"]) == (None, None)
    forced = handler.lambda_handler({**EVENT, "full_scan": True}, lambda_context)
    assert forced["full_scan"] is True
    assert forced["batch_id"] is not None


def test_resources_are_built_once_per_container_and_settings_read_each_call(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, settings = handler._resources()
    assert handler._resources() == (lake, settings)
    assert handler._resources()[0] is lake
    reset_container()
    assert handler._resources()[0] is not lake  # a new container builds its own
    # The source's settings are read at each invocation: a changed port applies at once.
    monkeypatch.setenv("PG_PORT", "1")
    with pytest.raises(SourceError, match="cannot connect to the source database"):
        handler.lambda_handler(EVENT, lambda_context)


@pytest.mark.usefixtures("configured")
def test_a_run_without_a_window_reads_up_to_now_and_says_which_window_it_used() -> None:
    before = datetime.now(UTC)
    first = handler.lambda_handler({"run_id": "manual__1"}, lambda_context)
    assert first["rows"]["sales_order"] == 6941
    assert first["window_start"] is None  # nothing was committed before
    assert before <= datetime.fromisoformat(first["window_end"]) <= datetime.now(UTC)
    open_window = {"run_id": "manual__2", "window_start": None, "window_end": None}
    again = handler.lambda_handler(open_window, lambda_context)
    assert again["batch_id"] is None
    # From the newest change the first run captured, as `totes run` does.
    assert again["window_start"] == "2024-02-23T11:11:10.072000+00:00"
    assert datetime.fromisoformat(again["window_end"]) > datetime.fromisoformat(first["window_end"])


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**EVENT, "window_end": "2024-02-24T00:00:00"}, "window_end"),
        ({**EVENT, "window_start": "yesterday"}, "window_start"),
        ({**EVENT, "full_scan": "yes"}, "full_scan"),
        # The fan-out's steps: each names its attempt, a known action and, for a worker, a table.
        ({"action": "extract_table", "attempt": "../_manifests", "table": "staff"}, "attempt"),
        ({"action": "drop", "attempt": ATTEMPT}, "action must be hold_snapshot"),
        ({"action": "extract_table", "attempt": ATTEMPT, "table": "pg_authid"}, "table"),
        ({"action": "commit", "attempt": ATTEMPT, "parts": "all"}, "parts"),
        ({**EVENT, "action": "hold_snapshot", "attempt": ATTEMPT, "full_scan": 1}, "full_scan"),
    ],
)
def test_malformed_events_are_refused(
    configured: str, event: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        handler.lambda_handler(event, lambda_context)
