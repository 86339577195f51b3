from __future__ import annotations

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


def test_environment_overrides_defaults() -> None:
    config = PipelineConfig.from_env(
        {
            "TOTES_ENVIRONMENT": "prod",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "TOTES_AWS_ACCOUNT_ID": "111122223333",
            "TOTES_ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:explicit",
            "TOTES_AWS_CONN_ID": "",
            "TOTES_POKE_SECONDS": "5",
        }
    )
    assert "arn:aws:states:eu-west-1:111122223333:stateMachine:totes-prod-pipeline" in (
        config.state_machine_arn
    )
    assert "'arn:aws:sns:eu-west-1:1:explicit'" in config.alerts_topic_arn
    assert config.aws_conn_id is None
    assert config.poke_seconds == 5


@pytest.mark.parametrize("raw", ["soon", "0"])
def test_bad_poke_interval_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="TOTES_POKE_SECONDS"):
        PipelineConfig.from_env({"TOTES_POKE_SECONDS": raw})
