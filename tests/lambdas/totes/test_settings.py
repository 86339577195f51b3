from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from totes.errors import SettingsError
from totes.settings import (
    extract_settings,
    ingestion_lake,
    processed_lake,
    source_db,
    warehouse_db,
)
from totes_dev.devstack.aws import MotoStack

SOURCE = {
    "PG_HOST": "db.example",
    "PG_PORT": "5433",
    "PG_USER": "reader",
    "PG_PASSWORD": "s3cret",
    "PG_DATABASE": "totesys",
}


def test_source_settings_read_every_variable() -> None:
    db = source_db(SOURCE)
    assert (db.host, db.port, db.user, db.password, db.database) == (
        "db.example",
        5433,
        "reader",
        "s3cret",
        "totesys",
    )
    assert "s3cret" not in repr(db)
    assert "s3cret" not in db.describe()


@pytest.mark.parametrize("missing", ["PG_HOST", "PG_USER", "PG_DATABASE"])
def test_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in SOURCE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        source_db(env)


def test_malformed_port_is_named() -> None:
    with pytest.raises(SettingsError, match="PG_PORT must be a port number"):
        source_db({**SOURCE, "PG_PORT": "five"})


def test_warehouse_defaults_port_and_user_to_the_source() -> None:
    env = {**SOURCE, "PG_HOST_DW": "dw.example", "PG_PASSWORD_DW": "x", "PG_DATABASE_DW": "dw"}
    db = warehouse_db(env)
    assert (db.host, db.port, db.user, db.database) == ("dw.example", 5433, "reader", "dw")
    db = warehouse_db({**env, "PG_PORT_DW": "6000", "PG_USER_DW": "loader"})
    assert (db.port, db.user) == (6000, "loader")


def test_lake_uris() -> None:
    s3 = ingestion_lake({"TOTES_INGESTION_URI": "s3://my-bucket/some/prefix/"})
    assert (s3.bucket, s3.prefix, s3.is_s3) == ("my-bucket", "some/prefix", True)
    local = processed_lake({"TOTES_PROCESSED_URI": "relative/dir"})
    assert local.bucket is None
    assert local.local_path is not None
    assert local.local_path.is_absolute()
    with pytest.raises(SettingsError, match="TOTES_INGESTION_URI"):
        ingestion_lake({"TOTES_INGESTION_URI": "gs://elsewhere"})
    with pytest.raises(SettingsError, match="TOTES_PROCESSED_URI is not set"):
        processed_lake({})


def test_extract_settings_defaults_and_errors() -> None:
    assert extract_settings({}).overlap == timedelta(minutes=10)
    assert extract_settings({}).full_scan_cadence == "daily"
    with pytest.raises(SettingsError, match="TOTES_OVERLAP_MINUTES"):
        extract_settings({"TOTES_OVERLAP_MINUTES": "soon"})
    with pytest.raises(SettingsError, match="TOTES_FULL_SCAN_CADENCE"):
        extract_settings({"TOTES_FULL_SCAN_CADENCE": "hourly"})


def test_credentials_come_from_secrets_manager(moto_stack: MotoStack) -> None:
    boto3.client("secretsmanager").create_secret(
        Name="totes/test/source-db", SecretString=json.dumps({**SOURCE, "PG_PASSWORD": "from-sm"})
    )
    db = source_db({"TOTES_SOURCE_SECRET_ID": "totes/test/source-db"})
    assert (db.host, db.password) == ("db.example", "from-sm")
    with pytest.raises(SettingsError, match="TOTES_WAREHOUSE_SECRET_ID could not be read"):
        warehouse_db({"TOTES_WAREHOUSE_SECRET_ID": "totes/test/missing"})
