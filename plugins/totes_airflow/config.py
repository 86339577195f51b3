"""Where the DAG finds the AWS resources, read without touching AWS or the metadata database.

Each value resolves, in order: an Airflow Variable (read when a task runs, through a template:
on MWAA the Variables come from Secrets Manager), then an environment variable, then the local
default built from ``totes.naming``, which names the resources exactly as Terraform does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from totes.naming import ResourceNames
from totes_airflow.summary import FRESHNESS_DEADLINE

# moto's account; on AWS the Variables (set by Terraform) always win over these defaults.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "eu-west-2"

STATE_MACHINE_VARIABLE = "totes_state_machine_arn"
ALERTS_TOPIC_VARIABLE = "totes_alerts_topic_arn"
# The Airflow connection to the warehouse: on MWAA from Secrets Manager
# (``airflow/connections/totes_warehouse``), locally from ``AIRFLOW_CONN_TOTES_WAREHOUSE``.
WAREHOUSE_CONN_ID = "totes_warehouse"

# The execution input: the run's own window, so a backfill or a re-run of an old run asks for
# exactly its interval; ``full_scan`` from the trigger form / dag_run.conf (a boolean Param).
# Rendered to a JSON string because the run id and timestamps must stay strings.
PIPELINE_INPUT = (
    "{{ {"
    "'run_id': run_id, "
    "'window_start': data_interval_start.isoformat(), "
    "'window_end': data_interval_end.isoformat(), "
    "'full_scan': params.full_scan"
    "} | tojson }}"
)


def _variable(name: str, default: str) -> str:
    """A template reading Variable ``name`` at run time, falling back to ``default``."""
    return f"{{{{ var.value.get('{name}', '{default}') }}}}"


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class PipelineConfig:
    aws_conn_id: str | None
    state_machine_arn: str  # template
    alerts_topic_arn: str  # template
    poke_seconds: int
    names: ResourceNames
    # The topic when the Variable is not set: where no template can be rendered (the deadline
    # callback runs in the triggerer) the Variable is read by name with this default.
    default_alerts_topic_arn: str
    warehouse_conn_id: str
    # After the run is queued; shorter only in tests that need a late run. None (0) leaves the
    # deadline out: ``dag.test()`` in Airflow 3.3.1 fails a successful run of a DAG that has one
    # (it looks the alerts up by id, and its DAG holds them serialised), so the demo and the
    # dag.test scenarios run without it; Airflow standalone exercises it for real.
    deadline: timedelta | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PipelineConfig:
        env = os.environ if env is None else env
        names = ResourceNames(env.get("TOTES_ENVIRONMENT") or "dev")
        region = env.get("AWS_DEFAULT_REGION") or LOCAL_REGION
        account = env.get("TOTES_AWS_ACCOUNT_ID") or LOCAL_ACCOUNT_ID
        machine = env.get("TOTES_STATE_MACHINE_ARN") or (
            f"arn:aws:states:{region}:{account}:stateMachine:{names.state_machine}"
        )
        topic = env.get("TOTES_ALERTS_TOPIC_ARN") or (
            f"arn:aws:sns:{region}:{account}:{names.alerts_topic}"
        )
        default_deadline = int(FRESHNESS_DEADLINE.total_seconds())
        return cls(
            # An empty id means boto3's default credential chain (a role, or the local stack).
            aws_conn_id=env.get("TOTES_AWS_CONN_ID", "aws_default") or None,
            state_machine_arn=_variable(STATE_MACHINE_VARIABLE, machine),
            alerts_topic_arn=_variable(ALERTS_TOPIC_VARIABLE, topic),
            poke_seconds=_positive_int(env, "TOTES_POKE_SECONDS", 30),
            names=names,
            default_alerts_topic_arn=topic,
            warehouse_conn_id=env.get("TOTES_WAREHOUSE_CONN_ID") or WAREHOUSE_CONN_ID,
            deadline=(
                None
                if env.get("TOTES_DEADLINE_SECONDS") == "0"
                else timedelta(
                    seconds=_positive_int(env, "TOTES_DEADLINE_SECONDS", default_deadline)
                )
            ),
        )
