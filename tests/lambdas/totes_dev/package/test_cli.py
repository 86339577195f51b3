"""``python -m totes_dev.package``: help for every command, one line and exit 1 for an expected
failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from totes_dev.package.cli import main


@pytest.mark.parametrize("command", ["build", "coldstart", "constraints"])
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert len(capsys.readouterr().out.split()) > 20


def test_no_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "totes_dev.package"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_measuring_without_a_build_says_how_to_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["coldstart", "--manifest", str(tmp_path / "artifacts.json")]) == 1
    err = capsys.readouterr().err
    assert err == "package: artifacts.json not found: build it with make package\n"
