from __future__ import annotations

from typing import Any

import psycopg
import pytest

from totes.errors import WarehouseError
from totes.load.handler import lambda_handler
from totes.settings import DbSettings
from totes_dev.devstack.aws import LambdaContext

lambda_context = LambdaContext("totes-test-load")


def _configure(monkeypatch: pytest.MonkeyPatch, db: DbSettings, lake_root: str) -> None:
    monkeypatch.setenv("PG_HOST_DW", db.host)
    monkeypatch.setenv("PG_PORT_DW", str(db.port))
    monkeypatch.setenv("PG_USER_DW", db.user)
    monkeypatch.setenv("PG_PASSWORD_DW", db.password)
    monkeypatch.setenv("PG_DATABASE_DW", db.database)
    monkeypatch.setenv("TOTES_PROCESSED_URI", lake_root)


def test_handler_migrates_an_empty_warehouse_and_loads_pending_batches(
    empty_database: DbSettings,
    processed_writer: Any,
    helpers: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = processed_writer.commit(
        {**helpers.dimension_rows(), "fact_payment": [helpers.payment(1)]}
    )
    _configure(monkeypatch, empty_database, str(processed_writer.lake.root))

    result = lambda_handler({"anything": "ignored"}, lambda_context)

    assert result["batches"] == [batch]
    assert result["fact_versions_added"]["fact_payment"] == 1
    with psycopg.connect(**empty_database.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM fact_payment_current").fetchone() == (1,)
    assert lambda_handler({}, lambda_context)["batches"] == []


def test_handler_raises_a_warehouse_error_when_the_warehouse_is_unreachable(
    empty_database: DbSettings, processed_writer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = DbSettings(empty_database.host, 1, "nobody", "", "nowhere")
    _configure(monkeypatch, gone, str(processed_writer.lake.root))
    with pytest.raises(WarehouseError, match="cannot connect to the warehouse"):
        lambda_handler({}, lambda_context)
