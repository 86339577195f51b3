from __future__ import annotations

from datetime import timedelta

import pytest

from totes_airflow.config import PipelineConfig


def test_local_defaults_follow_terraform_names() -> None:
    config = PipelineConfig.from_env({})
    assert config.aws_conn_id == "aws_default"
    assert config.poke_seconds == 30
    assert config.state_machine_arn == (
        "{{ var.value.get('totes_state_machine_arn', "
        "'arn:aws:states:eu-west-2:123456789012:stateMachine:totes-dev-pipeline') }}"
    )
    assert "arn:aws:sns:eu-west-2:123456789012:totes-dev-alerts" in config.alerts_topic_arn
    assert config.default_alerts_topic_arn == "arn:aws:sns:eu-west-2:123456789012:totes-dev-alerts"
    assert config.warehouse_conn_id == "totes_warehouse"
    assert config.deadline == timedelta(minutes=10)


def test_environment_overrides_defaults() -> None:
    config = PipelineConfig.from_env(
        {
            "TOTES_ENVIRONMENT": "prod",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "TOTES_AWS_ACCOUNT_ID": "111122223333",
            "TOTES_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:explicit",
            "TOTES_AWS_CONN_ID": "",
            "TOTES_POKE_SECONDS": "5",
            "TOTES_DEADLINE_SECONDS": "2",
            "TOTES_WAREHOUSE_CONN_ID": "other_warehouse",
        }
    )
    assert "arn:aws:states:eu-west-1:111122223333:stateMachine:totes-prod-pipeline" in (
        config.state_machine_arn
    )
    assert "'arn:aws:sns:eu-west-1:1:explicit'" in config.alerts_topic_arn
    assert config.aws_conn_id is None
    assert config.poke_seconds == 5
    assert config.deadline == timedelta(seconds=2)
    assert config.warehouse_conn_id == "other_warehouse"
    assert config.names.processed_bucket == "totes-prod-processed"


@pytest.mark.parametrize("raw", ["soon", "0"])
def test_bad_poke_interval_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="TOTES_POKE_SECONDS"):
        PipelineConfig.from_env({"TOTES_POKE_SECONDS": raw})


def test_a_zero_deadline_leaves_it_out() -> None:
    assert PipelineConfig.from_env({"TOTES_DEADLINE_SECONDS": "0"}).deadline is None


@pytest.mark.parametrize("raw", ["late", "-5"])
def test_bad_deadline_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="TOTES_DEADLINE_SECONDS"):
        PipelineConfig.from_env({"TOTES_DEADLINE_SECONDS": raw})
