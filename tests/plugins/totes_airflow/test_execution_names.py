from __future__ import annotations

import re

import pytest

from totes_airflow.execution_names import MAX_LENGTH, execution_name

ALLOWED = re.compile(r"^[A-Za-z0-9_-]+$")


def test_scheduled_run_id_becomes_a_readable_valid_name() -> None:
    name = execution_name("totes_pipeline", "scheduled__2026-11-25T23:20:00+00:00")
    assert name.startswith("totes_pipeline-scheduled__2026-11-25T23-20-00-00-00-")
    assert ALLOWED.match(name)
    assert ":" not in name
    assert "+" not in name


def test_names_are_stable_for_the_same_run() -> None:
    run_id = "manual__2026-11-25T23:20:00.123456+00:00"
    assert execution_name("d", run_id) == execution_name("d", run_id)


def test_run_ids_that_sanitise_alike_stay_distinct() -> None:
    plus = execution_name("d", "manual__2026-01-01T00:00:00+01:00")
    minus = execution_name("d", "manual__2026-01-01T00:00:00-01:00")
    assert plus != minus


def test_long_run_ids_are_truncated_but_unique() -> None:
    prefix = "backfill__" + "x" * 200
    first = execution_name("totes_pipeline", prefix + "1")
    second = execution_name("totes_pipeline", prefix + "2")
    assert first != second
    assert len(first) <= MAX_LENGTH
    assert len(execution_name("totes_pipeline", prefix + "1", attempt=999)) <= MAX_LENGTH


def test_later_attempts_get_a_suffix() -> None:
    base = execution_name("d", "r")
    assert execution_name("d", "r", attempt=1) == base
    assert execution_name("d", "r", attempt=2) == f"{base}-r2"


@pytest.mark.parametrize("attempt", [0, 1000])
def test_attempt_out_of_range_is_refused(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        execution_name("d", "r", attempt=attempt)
