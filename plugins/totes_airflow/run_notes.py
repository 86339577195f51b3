"""The run summary where Airflow users look: on the DAG run itself, as its note (the run's page
previews its first line and opens it as rendered Markdown).

A task cannot write its own run's note: the Task SDK's execution API has no call for it, and
tasks have no metadata-database access in Airflow 3. A listener can: the scheduler (and
``dag.test``) calls it with the run, inside its session, when the run succeeds or fails. It
copies the note the ``summary`` task left in XCom; a failed run gets the names of the tasks that
failed, so the note never claims a summary for a run that did not finish.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from totes_airflow.summary import NOTE_XCOM_KEY, fit_note

log = logging.getLogger(__name__)

DAG_ID = "totes_pipeline"
SUMMARY_TASK = "summary"


def _summary_note(dag_run: Any, session: Any) -> str | None:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    row = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_run.dag_id,
            XComModel.run_id == dag_run.run_id,
            XComModel.task_id == SUMMARY_TASK,
            XComModel.key == NOTE_XCOM_KEY,
        )
    ).first()
    if row is None:
        return None
    note = XComModel.deserialize_value(row)
    return note if isinstance(note, str) else None


def _failed_tasks(dag_run: Any, session: Any) -> list[str]:
    return sorted(
        ti.task_id for ti in dag_run.get_task_instances(session=session) if ti.state == "failed"
    )


def _write_note(dag_run: Any, session: Any, succeeded: bool) -> None:
    note = _summary_note(dag_run, session)
    if not succeeded:
        failed = ", ".join(f"`{task}`" for task in _failed_tasks(dag_run, session)) or "unknown"
        note = f"**Failed** at {failed}: the failure email and the task log say why." + (
            f"\n\n{note}" if note else ""
        )
    if note:
        dag_run.note = fit_note(note)
        session.flush()


def _set_note(dag_run: Any, succeeded: bool) -> None:
    from sqlalchemy.orm import object_session

    if dag_run.dag_id != DAG_ID:
        return
    session = object_session(dag_run)
    if session is not None:
        # The scheduler's session: the note commits with the run's new state.
        _write_note(dag_run, session, succeeded)
        return
    # dag.test() hands over a run detached from its session: write through a session of our own.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as own:
        attached = own.get(DagRun, dag_run.id)
        if attached is not None:
            _write_note(attached, own, succeeded)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _set_note(dag_run, succeeded=True)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _set_note(dag_run, succeeded=False)
