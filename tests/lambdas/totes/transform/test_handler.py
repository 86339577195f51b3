from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest

from totes.lake import S3Lake
from totes.transform.handler import lambda_handler
from totes_dev.devstack.aws import LambdaContext

Land = Callable[..., str]

lambda_context = LambdaContext("totes-test-transform")


def test_handler_transforms_what_is_pending_from_the_configured_lakes(
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    nov_source: dict[str, pa.Table],
    land: Land,
) -> None:
    ingestion = S3Lake(s3_bucket, "ingestion")
    land(
        ingestion, {"currency": nov_source["currency"], "payment_type": nov_source["payment_type"]}
    )
    monkeypatch.setenv("TOTES_INGESTION_URI", f"s3://{s3_bucket}/ingestion")
    monkeypatch.setenv("TOTES_PROCESSED_URI", f"s3://{s3_bucket}/processed")
    first = lambda_handler({"anything": 1}, lambda_context)
    assert len(first["batches"]) == 1
    assert first["rows"]["dim_currency"] == 3
    assert first["rows"]["dim_payment_type"] == 4
    assert sum(first["quarantined"].values()) == 0
    assert lambda_handler({}, lambda_context)["batches"] == []
    assert any(k.startswith("_manifests/") for k in S3Lake(s3_bucket, "processed").list(""))


def test_handler_without_lake_settings_raises_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from totes.errors import SettingsError

    monkeypatch.delenv("TOTES_INGESTION_URI", raising=False)
    with pytest.raises(SettingsError, match="TOTES_INGESTION_URI"):
        lambda_handler({}, lambda_context)
