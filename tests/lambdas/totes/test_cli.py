"""The ``totes`` command as an operator meets it: help for everything, versions, exit codes, one
clear line and no traceback for an expected failure, confirmation before anything destructive."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from totes.cli import PRODUCT_COMMANDS, build_parser
from totes.lake import LocalLake
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes_dev.devstack.deploy import database_environment

pytestmark = pytest.mark.slow


def _totes(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "TOTES_"))}
    return subprocess.run(
        [sys.executable, "-m", "totes.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def _environment(source: DbSettings, warehouse: DbSettings, root: Path) -> dict[str, str]:
    return {
        **database_environment(source, warehouse),
        "TOTES_INGESTION_URI": str(root / "ingestion"),
        "TOTES_PROCESSED_URI": str(root / "processed"),
    }


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "\t" not in done.stderr


def _subcommands(parser: argparse.ArgumentParser, path: str = "totes") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{path} {name}", sub))
                found += _subcommands(sub, f"{path} {name}")
    return found


def test_every_subcommand_and_option_has_a_description() -> None:
    commands = _subcommands(build_parser([]))
    assert {"totes run", "totes check", "totes warehouse rebuild", "totes lock break"} <= {
        name for name, _ in commands
    }
    assert "totes source generate" in {name for name, _ in commands}  # the dev tools plug in
    for name, parser in commands:
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"


@pytest.mark.parametrize("command", sorted(PRODUCT_COMMANDS))
def test_a_product_command_registers_itself_without_scanning_entry_points(command: str) -> None:
    """The entry-point scan reads every installed distribution's metadata; a product command
    does not need it, so here it fails if it is called."""
    probe = (
        "import importlib.metadata as metadata\n"
        "def refuse(*args, **kwargs): raise AssertionError('entry points scanned')\n"
        "metadata.entry_points = refuse\n"
        "from totes.cli import build_parser\n"
        f"parser = build_parser([{command!r}])\n"
        "print(sorted(parser._subparsers._group_actions[0].choices))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"[{command!r}]"]


def test_version() -> None:
    done = _totes({}, "--version")
    assert done.returncode == 0
    assert done.stdout.startswith("totes ")
    assert done.stdout.split()[1][0].isdigit()


@pytest.fixture
def loaded(source_feb: DbSettings, new_database: Any, tmp_path: Path) -> dict[str, str]:
    warehouse = new_database("wh")
    run_cycle(
        Stack(
            source=source_feb,
            ingestion=LocalLake(tmp_path / "ingestion"),
            processed=LocalLake(tmp_path / "processed"),
            warehouse=warehouse,
            settings=ExtractSettings(),
        )
    )
    return _environment(source_feb, warehouse, tmp_path)


def test_check_exits_0_when_consistent_1_when_it_differs_2_when_it_cannot_check(
    loaded: dict[str, str],
) -> None:
    consistent = _totes(loaded, "check")
    assert consistent.returncode == 0, consistent.stdout + consistent.stderr
    assert consistent.stdout.startswith("warehouse matches the source")
    as_json = json.loads(_totes(loaded, "check", "--json").stdout)
    assert as_json["ok"] is True
    assert {t["table"] for t in as_json["tables"]} >= {"dim_staff", "fact_payment"}

    with psycopg.connect(
        host=loaded["PG_HOST_DW"],
        port=loaded["PG_PORT_DW"],
        user=loaded["PG_USER_DW"],
        dbname=loaded["PG_DATABASE_DW"],
    ) as conn:
        conn.execute("UPDATE dim_staff SET location = 'Leeds' WHERE staff_id = 1")
    differs = _totes(loaded, "check", "--json")
    assert differs.returncode == 1
    report = json.loads(differs.stdout)
    assert report["ok"] is False
    (staff,) = [t for t in report["tables"] if t["table"] == "dim_staff"]
    assert staff["changed_count"] == 1

    down = _totes({**loaded, "PG_PORT_DW": "1"}, "check")
    assert down.returncode == 2
    _no_traceback(down)
    assert down.stdout == ""
    (line,) = down.stderr.strip().splitlines()
    assert line.startswith("totes: [check] could not check: [load] cannot connect to the warehouse")


def test_rebuild_asks_first_and_refuses_without_yes_off_a_terminal(loaded: dict[str, str]) -> None:
    refused = _totes(loaded, "warehouse", "rebuild", stdin="rebuild\n")
    assert refused.returncode == 2
    _no_traceback(refused)
    assert "run it with --yes" in refused.stderr
    assert _totes(loaded, "check").returncode == 0  # nothing was dropped
    rebuilt = _totes(loaded, "warehouse", "rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(json.loads(rebuilt.stdout)["batches"]) == 1
    assert "replaying batches: 1/1" in rebuilt.stderr  # progress, as plain lines off a terminal
    assert _totes(loaded, "check").returncode == 0


def test_a_source_that_is_down_gives_one_line_that_keeps_the_cause(tmp_path: Path) -> None:
    env = {
        "PG_HOST": "127.0.0.1",
        "PG_PORT": "1",
        "PG_USER": "x",
        "PG_DATABASE": "x",
        "PG_HOST_DW": "127.0.0.1",
        "PG_DATABASE_DW": "x",
        "TOTES_INGESTION_URI": str(tmp_path / "in"),
        "TOTES_PROCESSED_URI": str(tmp_path / "out"),
    }
    done = _totes(env, "run")
    assert done.returncode == 1
    _no_traceback(done)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("totes: [extract] cannot connect to the source database x@127.0.0.1:1/x")
    assert "Connection refused" in line
    assert "Is the server running" in line


def test_a_lake_path_that_is_a_file_is_one_clear_line() -> None:
    done = _totes({"TOTES_PROCESSED_URI": "/etc/passwd"}, "quarantine", "list")
    assert done.returncode == 1
    _no_traceback(done)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("totes: [lake] lake /etc/passwd is not a usable directory")
