"""What warm Lambda containers keep and what they re-read: a rotated database password reaches a
warm handler at its next invocation, through the secret it re-reads after a refused login."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest

from totes.errors import WarehouseError
from totes.load.handler import lambda_handler
from totes.runtime import per_container, reset_container
from totes_dev.devstack.aws import LambdaContext, MotoStack
from totes_dev.devstack.postgres import TempCluster, create_password_login, start_cluster

CONTEXT = LambdaContext("totes-test-load")


def test_per_container_builds_once_until_the_container_is_new() -> None:
    built: list[object] = []

    @per_container
    def resource() -> object:
        built.append(object())
        return built[-1]

    assert resource() is resource()
    reset_container()
    assert resource() is built[1]
    assert len(built) == 2


@pytest.fixture
def cluster() -> Iterator[TempCluster]:
    """A server of its own: its login role must authenticate with a password."""
    server = start_cluster()
    try:
        yield server
    finally:
        server.stop()


def _password(cluster: TempCluster, password: str) -> None:
    with psycopg.connect(**cluster.dsn().conninfo(), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE loader PASSWORD '{password}'")


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_warm_handler_recovers_from_a_password_rotation_by_re_reading_its_secret(
    cluster: TempCluster,
    moto_stack: MotoStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with psycopg.connect(**cluster.dsn().conninfo(), autocommit=True) as conn:
        create_password_login(conn, "loader", "first")
        conn.execute("CREATE DATABASE warehouse OWNER loader")
    secret_id = f"totes/test-{uuid.uuid4().hex[:8]}/warehouse-db"
    secrets = boto3.client("secretsmanager")

    def store(password: str) -> None:
        values = {
            "PG_HOST_DW": "127.0.0.1",
            "PG_PORT_DW": str(cluster.port),
            "PG_USER_DW": "loader",
            "PG_PASSWORD_DW": password,
            "PG_DATABASE_DW": "warehouse",
        }
        secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(values))

    secrets.create_secret(Name=secret_id, SecretString="{}")
    store("first")
    for name in ("PG_HOST_DW", "PG_PORT_DW", "PG_USER_DW", "PG_PASSWORD_DW", "PG_DATABASE_DW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOTES_WAREHOUSE_SECRET_ID", secret_id)
    monkeypatch.setenv("TOTES_PROCESSED_URI", str(tmp_path / "processed"))

    assert lambda_handler({"run_id": "r1"}, CONTEXT)["batches"] == []  # migrated, cold start

    # The password is rotated, in the database and in the secret, while the container is warm:
    # its cached secret still holds the old one.
    _password(cluster, "second")
    store("second")
    capsys.readouterr()
    assert lambda_handler({"run_id": "r2"}, CONTEXT)["batches"] == []
    rejected = [
        r for r in _records(capsys.readouterr().out) if r.get("message") == "credentials.rejected"
    ]
    assert len(rejected) == 1
    assert "password authentication failed" in str(rejected[0]["reason"])
    assert rejected[0]["correlation_id"] == "r2"

    # A secret that was not updated is still a clear error naming the database, once re-read.
    _password(cluster, "third")
    with pytest.raises(WarehouseError, match="cannot connect to the warehouse database loader@"):
        lambda_handler({"run_id": "r3"}, CONTEXT)
