"""Connections and COPY writing against a real PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg
import pytest
from psycopg.copy import LibpqWriter

from totes.db import FlushedCopyWriter, connect_arrow
from totes.errors import SourceError
from totes.settings import DbSettings
from totes_dev.devstack.postgres import TempCluster, create_password_login, start_cluster

MB = 1 << 20
CHUNKS = 96  # one MB each: far more than a loopback socket's buffers hold


def _bytes_handed_to_a_stalled_copy(db: DbSettings, writer: type[LibpqWriter]) -> int:
    """How much the client's writes accepted while the server was not reading (its insert
    trigger waits on an advisory lock), then the rows once the server reads again."""
    with psycopg.connect(**db.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE sink (line text)")
        conn.execute(
            "CREATE FUNCTION wait_for_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_advisory_lock_shared(42); PERFORM pg_advisory_unlock_shared(42); "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER gate BEFORE INSERT ON sink "
            "FOR EACH ROW EXECUTE FUNCTION wait_for_gate()"
        )
    chunk = (b"x" * 1023 + b"\n") * 1024
    handed: list[int] = []
    failures: list[BaseException] = []

    def copy() -> None:
        try:
            with (
                psycopg.connect(**db.conninfo()) as conn,
                conn.cursor() as cur,
                cur.copy("COPY sink FROM STDIN", writer=writer(cur)) as stream,
            ):
                for _ in range(CHUNKS):
                    stream.write(chunk)
                    handed.append(len(chunk))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    with psycopg.connect(**db.conninfo(), autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(42)")
        writer_thread = threading.Thread(target=copy, daemon=True)
        writer_thread.start()
        time.sleep(2)
        accepted = sum(handed)
        gate.execute("SELECT pg_advisory_unlock(42)")
        writer_thread.join(timeout=60)
    assert not writer_thread.is_alive()
    assert not failures, failures
    with psycopg.connect(**db.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM sink").fetchone()
    assert row == (CHUNKS * 1024,)
    return accepted


def test_a_copy_writer_waits_for_a_server_that_is_not_reading(
    new_database: Callable[[str], DbSettings],
) -> None:
    # libpq's output buffer would otherwise take every write: the load's memory would then
    # grow with the table whenever the warehouse inserts slower than the client encodes.
    accepted = _bytes_handed_to_a_stalled_copy(new_database("copyflush"), FlushedCopyWriter)
    assert accepted < CHUNKS * MB // 3, f"{accepted // MB} MB accepted while the server waited"


def test_psycopgs_own_copy_writer_buffers_what_the_server_does_not_read(
    new_database: Callable[[str], DbSettings],
) -> None:
    """What :class:`FlushedCopyWriter` exists for; if psycopg starts flushing on Linux, this
    fails and the writer can go."""
    accepted = _bytes_handed_to_a_stalled_copy(new_database("copybuffer"), LibpqWriter)
    assert accepted == CHUNKS * MB


SECRET = "s3cret-pw-Xq7"  # a throwaway role's password, on a throwaway server


@pytest.fixture
def password_server() -> Iterator[TempCluster]:
    """A server of its own whose login role must give its password."""
    server = start_cluster()
    try:
        with psycopg.connect(**server.dsn().conninfo(), autocommit=True) as conn:
            create_password_login(conn, "rows_reader", SECRET)
        yield server
    finally:
        server.stop()


def test_an_arrow_connection_takes_the_password_and_never_shows_it(
    password_server: TempCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The ADBC driver takes the password inside one connection string: a refused login must
    not echo it (nor the wrong one tried), and must say the credentials were refused."""
    right = replace(password_server.dsn(), user="rows_reader", password=SECRET)
    database, connection = connect_arrow(right, error=SourceError, role="source")
    connection.close()
    database.close()
    wrong = replace(right, password=SECRET + "-old")
    with pytest.raises(SourceError, match="cannot connect to the source database") as raised:
        connect_arrow(wrong, error=SourceError, role="source")
    shown = f"{raised.value} {raised.value.__cause__} {raised.value.__context__} {caplog.text}"
    assert "password authentication failed" in shown
    assert SECRET not in shown
    assert raised.value.credentials_rejected
    with pytest.raises(SourceError) as refused:
        connect_arrow(replace(right, port=_unused_port()), error=SourceError, role="source")
    assert "Connection refused" in str(refused.value)
    assert not refused.value.credentials_rejected
    assert SECRET not in str(refused.value)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
