"""Registers the run-note listener with Airflow (plugins are loaded by every component; only
the scheduler and ``dag.test`` change run states, so only they call it)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from totes_airflow import run_notes


class TotesPlugin(AirflowPlugin):
    name = "totes"
    listeners = [run_notes]  # noqa: RUF012 (the attribute Airflow reads)
