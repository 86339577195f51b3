"""``make airflow`` in a browser: headless Chromium (Debian's, driven by Playwright) triggers a
run from the UI, waits for it, and photographs the grid, the Assets graph and the run's summary
for the README. ``make screenshots`` runs it with TOTES_SCREENSHOT_DIR=docs/screenshots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from totes_dev.devstack.airflow import REPO_ROOT, ensure_chromium, wait_for_http
from totes_dev.devstack.postgres import free_port

pytestmark = [pytest.mark.screenshots, pytest.mark.slow]

DAG_ID = "totes_pipeline"


def _api(base_url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base_url}/api/v2{path}", timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


@pytest.fixture
def make_airflow(tmp_path: Path) -> Iterator[str]:
    """What ``make airflow`` runs, from a shell without this test process's Airflow or AWS
    settings; its base URL. Stopped with Ctrl-C's signal, as a user stops it."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "TOTES_", "AWS_", "MOTO_"))
    }
    log_path = tmp_path / "make-airflow.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "totes_dev.devstack.airflow", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            wait_for_http(f"{base_url}/api/v2/monitor/health", timeout=300, process=process)
            print(f"make airflow up in {time.monotonic() - started:.1f} s (log {log_path})")
            yield base_url
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_run(base_url: str, timeout: float = 240) -> dict[str, Any]:
    """The run triggered from the UI, once finished (unpausing also starts the latest
    scheduled window beside it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _api(base_url, f"/dags/{DAG_ID}/dagRuns?limit=10")["dag_runs"]
        manual = [run for run in runs if run["run_type"] == "manual"]
        if manual and manual[0]["state"] in ("success", "failed"):
            return dict(manual[0])
        time.sleep(2)
    pytest.fail(f"the triggered run did not finish in {timeout:.0f} s")


def _run_with_rows(base_url: str) -> str:
    runs = _api(base_url, f"/dags/{DAG_ID}/dagRuns?limit=10")["dag_runs"]
    with_rows = [r["dag_run_id"] for r in runs if "| fact_sales_order |" in (r["note"] or "")]
    assert with_rows, [r["note"] for r in runs]
    return str(with_rows[0])


def _expand_task_groups(
    page: Any, base_url: str, run_id: str, failed_calls: list[str], tmp_path: Path
) -> None:
    """Open the grid with its task groups expanded. The expand button appears only once the
    DAG's structure has loaded; beside the rest of make test that request can lose its first
    answer (seen once in CI: the run's cell drawn, the task list never), so the page is
    reloaded a few times before the test gives up with what the browser saw."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    expand = page.get_by_role("button", name="Expand all task groups")
    for attempt in range(1, 4):
        page.goto(f"{base_url}/dags/{DAG_ID}")
        expect(page.get_by_test_id(f"grid-{run_id}-summary")).to_be_visible(timeout=30_000)
        try:
            expand.wait_for(state="visible", timeout=20_000)
        except PlaywrightTimeout:
            page.screenshot(path=str(tmp_path / f"grid-without-groups-{attempt}.png"))
            continue
        expand.click()
        return
    pytest.fail(
        "the grid never showed its task groups' expand button after 3 loads; "
        f"failed requests: {failed_calls or 'none'}; screenshots in {tmp_path}"
    )


def test_trigger_from_the_ui_and_photograph_grid_assets_and_summary(
    make_airflow: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url = make_airflow
    shots = Path(os.environ.get("TOTES_SCREENSHOT_DIR") or tmp_path).resolve()
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=ensure_chromium(), args=["--no-sandbox"], headless=True
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        failed_calls: list[str] = []
        page.on(
            "response",
            lambda response: (
                failed_calls.append(f"{response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )
        # Generous waits: beside the rest of make test, two cores serve two Airflows.
        page.set_default_timeout(60_000)
        expect.set_options(timeout=30_000)

        # The DAG starts paused: the trigger form unpauses it (its box, ticked for a paused
        # DAG, stays ticked).
        page.goto(f"{base_url}/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger Dag").click()
        dialog = page.get_by_role("dialog")
        unpause = dialog.get_by_label(f"Unpause {DAG_ID} on trigger")
        if not unpause.is_checked():
            unpause.check(force=True)
        dialog.get_by_role("button", name="Trigger", exact=True).click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(tmp_path / "after-trigger.png"))

        run = _wait_for_run(base_url)
        assert _api(base_url, f"/dags/{DAG_ID}")["is_paused"] is False
        assert run["state"] == "success", run
        assert run["triggered_by"] == "ui"
        assert "**Freshness**" in run["note"]

        # The grid, with every task of the run successful.
        _expand_task_groups(page, base_url, run["dag_run_id"], failed_calls, tmp_path)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "airflow-grid.png"))

        # The Assets graph of a warehouse table: totesys -> lakes -> warehouse.
        [asset] = _api(base_url, "/assets?name_pattern=warehouse.fact_sales_order")["assets"]
        page.goto(f"{base_url}/assets/{asset['id']}")
        page.get_by_role("button", name="Task Dependencies").click()
        expect(page.get_by_text("totesys", exact=True).first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("processed_lake", exact=True).first).to_be_visible()
        page.get_by_role("button", name="fit view").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "airflow-assets.png"))

        # The run's page, with the summary rendered from its note.
        # A run's summary: its note's first line previews on the run page, and opening the
        # note shows the whole Markdown. Unpausing started the latest scheduled window too, and
        # whichever ran first loaded the generated source: that run has the counts to show.
        loaded = _run_with_rows(base_url)
        page.goto(f"{base_url}/dags/{DAG_ID}/runs/{loaded}")
        expect(page.get_by_text("Freshness", exact=True).first).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Edit note").click()
        note = page.get_by_role("dialog")
        expect(note.get_by_text("fact_sales_order", exact=True)).to_be_visible(timeout=30_000)
        expect(note.get_by_role("columnheader", name="versions added")).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "airflow-run-summary.png"))
        browser.close()

    for name in ("airflow-grid.png", "airflow-assets.png", "airflow-run-summary.png"):
        assert (shots / name).stat().st_size > 20_000, name
