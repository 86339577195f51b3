"""Cycles that meet: two ``totes run`` at once, a replay during a run, a cycle that finds the lock
taken, and a lake that an earlier version left with two batches of one sequence.

Real PostgreSQL (the 2024-02-23 snapshot), real lakes on disk and the real ``totes`` command in
separate processes, as an operator would start them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pyarrow.compute as pc
import pytest

from totes.batches import MANIFEST_PREFIX, batch_time, sequence_of_manifest
from totes.check.check import check
from totes.check.reconcile import format_report
from totes.commits import committed_after, newest
from totes.extract.extractor import run_extract
from totes.lake import Lake, LocalLake, S3Lake, get_json, read_parquet
from totes.load.loader import load_pending
from totes.lock.lease import LEASE_PREFIX, CycleLock
from totes.naming import ResourceNames
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes.transform.transformer import transform_pending
from totes_dev.devstack.aws import MotoStack
from totes_dev.devstack.deploy import database_environment, deploy
from totes_dev.source.simulate import simulate

pytestmark = pytest.mark.slow

FACT_SOURCES = {
    "fact_sales_order": ("sales_order", "sales_order_id"),
    "fact_purchase_order": ("purchase_order", "purchase_order_id"),
    "fact_payment": ("payment", "payment_id"),
}


@pytest.fixture
def stack(source_feb: DbSettings, new_database: Any, tmp_path: Path) -> Stack:
    """The Feb snapshot after one cycle."""
    built = Stack(
        source=source_feb,
        ingestion=LocalLake(tmp_path / "ingestion"),
        processed=LocalLake(tmp_path / "processed"),
        warehouse=new_database("wh"),
        settings=ExtractSettings(),
    )
    run_cycle(built)
    return built


def _environment(stack: Stack) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG_", "TOTES_"))},
        **database_environment(stack.source, stack.warehouse),
        "TOTES_INGESTION_URI": stack.ingestion.uri,
        "TOTES_PROCESSED_URI": stack.processed.uri,
    }


def _start(stack: Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "totes.cli", *args],
        env=_environment(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def _lease_log(lake: Lake) -> list[dict[str, Any]]:
    """Every lock record, oldest first."""
    return [get_json(lake, key) for key in reversed(list(lake.list(LEASE_PREFIX)))]


def _holds(log: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(holder, first epoch, releasing epoch) of each hold, in order."""
    holds: list[tuple[str, int, int]] = []
    holder, start = None, 0
    for record in log:
        if record["state"] == "held" and record["holder"] != holder:
            assert holder is None, f"{record['holder']} took the lock while {holder} held it"
            holder, start = record["holder"], record["epoch"]
        elif record["state"] == "released":
            assert holder is not None
            holds.append((holder, start, record["epoch"]))
            holder = None
    assert holder is None, f"{holder} never released the lock"
    return holds


def _fact_versions(db: DbSettings) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(**db.conninfo()) as conn:
        for fact, (_, key) in FACT_SOURCES.items():
            out[fact] = conn.execute(
                f"SELECT {key}, content_hash, is_deleted FROM {fact} ORDER BY 1, 2, 3"
            ).fetchall()
    return out


def _assert_consistent(stack: Stack) -> None:
    report = check(stack.source, stack.warehouse)
    assert report.ok, format_report(report)


def _simulated_changes(report: dict[str, Any]) -> dict[str, int]:
    changed = {"fact_sales_order": 0, "fact_purchase_order": 0, "fact_payment": 0}
    for kind in ("inserted", "updated", "silent_edits"):
        for table, ids in report.get(kind, {}).items():
            for fact, (source, _) in FACT_SOURCES.items():
                if table == source:
                    changed[fact] += len(ids)
    return changed


def test_two_runs_started_together_do_the_work_once(stack: Stack) -> None:
    changes = _simulated_changes(simulate(stack.source, minutes=120, seed=7))
    before = _fact_versions(stack.warehouse)
    runs = [_start(stack, "run", "--wait", "120") for _ in range(2)]
    results = [_finish(run) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], results
    summaries = [json.loads(out) for _, out, _ in results]
    # One cycle captured the simulated activity; the other ran after it and found nothing new.
    added = [s["fact_versions_added"] for s in summaries]
    assert sorted(sum(a.values()) for a in added) == [0, sum(changes.values())]
    holds = _holds(_lease_log(stack.ingestion))  # fails if one held the lock during the other
    assert {h for h, _, _ in holds[-2:]} == {s["lock_holder"] for s in summaries}
    after = _fact_versions(stack.warehouse)
    for fact, rows in after.items():
        assert len(rows) == len(set(rows)), fact  # no version twice
        assert len(rows) - len(before[fact]) == changes[fact], fact
    assert [b.sequence for b in committed_after(stack.ingestion, 0)] == [1, 2]
    _assert_consistent(stack)


def test_a_run_that_finds_the_lock_taken_ends_at_once_with_its_own_code(stack: Stack) -> None:
    simulate(stack.source, minutes=60, seed=3)
    lock = CycleLock(stack.ingestion)
    held = lock.acquire("totes-dev-pipeline:scheduled-run", timedelta(minutes=30))
    head = newest(stack.ingestion)
    code, stdout, stderr = _finish(_start(stack, "run"))
    assert code == 75
    assert stdout == ""
    assert stderr.strip().splitlines() == [
        f"totes: [lock] another cycle is running: {held.describe()}"
    ]
    assert "totes-dev-pipeline:scheduled-run holds the lock since" in held.describe()
    assert newest(stack.ingestion) == head  # nothing was extracted
    lock.release("totes-dev-pipeline:scheduled-run")
    code, stdout, _ = _finish(_start(stack, "run"))
    assert code == 0
    assert json.loads(stdout)["batch_id"] is not None
    _assert_consistent(stack)


def test_a_replay_started_during_a_run_waits_for_it(stack: Stack) -> None:
    with psycopg.connect(**stack.source.conninfo()) as conn:
        conn.execute(
            # Stamped like the snapshot's rows, so simulated activity still comes after it.
            "INSERT INTO currency (currency_id, currency_code, created_at, last_updated) "
            "SELECT 99, 'XYZ', max(created_at), max(last_updated) FROM currency"
        )
    quarantined = run_cycle(stack)
    assert quarantined["quarantined"]["currency"] == 1
    latest = newest(stack.processed)
    assert latest is not None
    keys = latest.document["quarantine_keys"]
    simulate(stack.source, minutes=120, seed=11)
    run = _start(stack, "run", "--wait", "120")
    replay = _start(stack, "quarantine", "replay", *keys, "--wait", "120")
    (run_code, run_out, run_err), (replay_code, replay_out, replay_err) = (
        _finish(run),
        _finish(replay),
    )
    assert (run_code, replay_code) == (0, 0), (run_err, replay_err)
    holders = {json.loads(run_out)["lock_holder"]}
    holds = _holds(_lease_log(stack.ingestion))
    assert holders <= {h for h, _, _ in holds}
    assert any(h.startswith("totes-replay:") for h, _, _ in holds[-2:])
    replayed = json.loads(replay_out)
    assert replayed["rows"] == {"currency": 1}
    # The replayed batch holds its own sequence in one unbroken history.
    history = committed_after(stack.ingestion, 0)
    assert [b.sequence for b in history] == list(range(1, len(history) + 1))
    assert replayed["manifest_key"] in {b.key for b in history}
    final = run_cycle(stack)
    assert final["quarantined"]["currency"] in (0, 1)  # still XYZ: quarantined again, not lost
    _assert_consistent(stack)


# --- a lake wedged by an earlier version ------------------------------------------------------


def _to_legacy_keys(lake: LocalLake) -> None:
    """Rename sequence-keyed manifests to the time-keyed form earlier versions wrote."""
    for key in list(lake.list(MANIFEST_PREFIX)):
        if sequence_of_manifest(key) is None:
            continue
        batch_id = get_json(lake, key)["batch_id"]
        millis = int(batch_time(batch_id).timestamp() * 1000)
        target = lake.root / f"{MANIFEST_PREFIX}{9_999_999_999_999 - millis:013d}-{batch_id}.json"
        (lake.root / key).rename(target)


def _extract(stack: Stack, lake: Lake) -> dict[str, Any]:
    return run_extract(
        stack.source,
        lake,
        run_id="old-version",
        window_start=None,
        window_end=datetime.now(UTC),
        full_scan=False,
        settings=stack.settings,
    )


def _landed_versions(lake: Lake, manifest: dict[str, Any]) -> set[tuple[str, int, str]]:
    found: set[tuple[str, int, str]] = set()
    for fact, (table, key) in FACT_SOURCES.items():
        entry = manifest["tables"][table]
        if entry["key"]:
            rows = read_parquet(lake, entry["key"])
            rows = rows.filter(pc.equal(rows.column("_op"), "upsert"))
            found |= {
                (fact, pk, digest)
                for pk, digest in zip(
                    rows.column(key).to_pylist(),
                    rows.column("_content_hash").to_pylist(),
                    strict=True,
                )
            }
    return found


def test_a_lake_holding_two_batches_of_one_sequence_recovers_with_nothing_lost(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As two racing extracts of an earlier version left it: batches A and B both hold sequence
    2, a batch C was built on B, and the transform and load took A."""
    assert isinstance(stack.ingestion, LocalLake)
    assert isinstance(stack.processed, LocalLake)
    simulate(stack.source, minutes=60, seed=21)
    lake_a, lake_b = (LocalLake(tmp_path / name) for name in ("lake_a", "lake_b"))
    for copy in (lake_a, lake_b):
        shutil.copytree(stack.ingestion.root, copy.root)
    batch_a = _extract(stack, lake_a)
    simulate(stack.source, minutes=60, seed=22)
    batch_b = _extract(stack, lake_b)
    simulate(stack.source, minutes=30, seed=23)
    batch_c = _extract(stack, lake_b)
    assert batch_a["sequence"] == batch_b["sequence"] == 2
    assert batch_a["batch_id"] < batch_b["batch_id"]
    assert batch_c["sequence"] == 3
    # The transform and the load of the earlier version took A.
    transform_pending(lake_a, stack.processed)
    load_pending(stack.warehouse, stack.processed)
    held_by_b_or_c = _landed_versions(
        lake_b, get_json(lake_b, batch_b["manifest_key"])
    ) | _landed_versions(lake_b, get_json(lake_b, batch_c["manifest_key"]))
    for lake in (lake_a, lake_b, stack.ingestion, stack.processed):
        _to_legacy_keys(lake)
    for copy in (lake_a, lake_b):
        shutil.copytree(copy.root, stack.ingestion.root, dirs_exist_ok=True)
    assert len(list(stack.ingestion.list(MANIFEST_PREFIX))) == 4  # 1, A, B and C
    capsys.readouterr()

    recovered = run_cycle(stack)

    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    ignored = {r["batch_id"] for r in logged if r["message"] == "lake.manifest_ignored"}
    assert ignored == {batch_b["batch_id"], batch_c["batch_id"]}
    assert recovered["batches_loaded"] == [recovered["batch_id"]]
    history = committed_after(stack.ingestion, 0)
    assert [b.sequence for b in history] == [1, 2, 3]
    assert history[1].batch_id == batch_a["batch_id"]
    assert history[-1].document["previous_batch_id"] == batch_a["batch_id"]
    _assert_consistent(stack)
    # Nothing B or C held is lost: each version they captured is in the warehouse, unless the
    # source changed that row again since (then its newer version is, as the check shows).
    in_warehouse = {
        (fact, pk, digest)
        for fact, rows in _fact_versions(stack.warehouse).items()
        for pk, digest, _ in rows
    }
    latest_state = {}
    for fact, (table, _) in FACT_SOURCES.items():
        state = read_parquet(stack.ingestion, history[-1].document["tables"][table]["state_key"])
        latest_state[fact] = dict(
            zip(
                state.column("pk").to_pylist(),
                state.column("content_hash").to_pylist(),
                strict=True,
            )
        )
    still_current = {v for v in held_by_b_or_c if latest_state[v[0]].get(v[1]) == v[2]}
    assert still_current
    assert still_current <= in_warehouse
    # And the next cycle has nothing left to do.
    again = run_cycle(stack)
    assert again["batch_id"] is None
    assert sum(again["fact_versions_added"].values()) == 0


# --- two executions of the state machine ------------------------------------------------------


def test_two_executions_started_together_on_the_local_stack_do_the_work_once(
    source_feb: DbSettings, new_database: Any, tmp_path: Path, moto_stack: MotoStack
) -> None:
    stack = Stack(
        source=source_feb,
        ingestion=LocalLake(tmp_path / "unused"),
        processed=LocalLake(tmp_path / "unused"),
        warehouse=new_database("wh"),
        settings=ExtractSettings(),
    )
    names = ResourceNames(environment=f"c{uuid.uuid4().hex[:6]}")
    deployment = deploy(database_environment(stack.source, stack.warehouse), names)
    lake = S3Lake(names.ingestion_bucket)
    sfn = boto3.client("stepfunctions")
    window_end = datetime.now(UTC).isoformat()
    arns = [
        sfn.start_execution(
            stateMachineArn=deployment.state_machine_arn,
            name=name,
            input=json.dumps(
                {"run_id": name, "window_start": None, "window_end": window_end, "full_scan": False}
            ),
        )["executionArn"]
        for name in ("manual-run", "scheduled-run")
    ]
    outputs = []
    for arn in arns:
        deadline = time.monotonic() + 180
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.2)
        assert described["status"] == "SUCCEEDED", described
        outputs.append(json.loads(described["output"]))
    holds = _holds(_lease_log(lake))  # fails if one execution held the lock during the other
    assert {h for h, _, _ in holds} == {"manual-run", "scheduled-run"}
    loaded = sorted(sum(o["load"]["fact_versions_added"].values()) for o in outputs)
    # The first execution to get the lock loads the snapshot; the other then finds nothing new.
    assert loaded == [0, 6_941 + 2_958 + 9_899]
    assert [b.sequence for b in committed_after(lake, 0)] == [1]
    for fact, rows in _fact_versions(stack.warehouse).items():
        assert len(rows) == len(set(rows)), fact
    _assert_consistent(stack)
