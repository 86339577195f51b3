"""``totes lock status | break`` on a lake directory."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from totes.cli import main
from totes.errors import CycleBusyError
from totes.lake import LocalLake
from totes.lock.lease import CycleLock


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CycleLock:
    monkeypatch.setenv("TOTES_INGESTION_URI", str(tmp_path / "ingestion"))
    return CycleLock(LocalLake(tmp_path / "ingestion"))


def test_status_names_the_holder(lock: CycleLock, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock", "status"]) == 0
    assert json.loads(capsys.readouterr().out) == {"held": False, "holder": None}
    lock.acquire("totes-run:host:1:abc", timedelta(minutes=5))
    assert main(["lock", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["held"], status["holder"], status["state"]) == (
        True,
        "totes-run:host:1:abc",
        "held",
    )


def test_break_needs_yes_and_then_frees_the_lock(
    lock: CycleLock, capsys: pytest.CaptureFixture[str]
) -> None:
    lock.acquire("killed-process", timedelta(minutes=5))
    assert main(["lock", "break"]) == 2
    assert "needs --yes" in capsys.readouterr().err
    with pytest.raises(CycleBusyError, match="killed-process"):
        lock.acquire("next", timedelta(minutes=5))
    assert main(["lock", "break", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out) == {"broken": True, "holder": "killed-process"}
    assert lock.acquire("next", timedelta(minutes=5)).holder == "next"
