"""Opening PostgreSQL connections with errors that say which database and step failed."""

from __future__ import annotations

import select
from typing import TYPE_CHECKING

import psycopg
from psycopg.abc import Buffer
from psycopg.conninfo import make_conninfo
from psycopg.copy import LibpqWriter

from totes.errors import TotesError, reason
from totes.settings import DbSettings

if TYPE_CHECKING:
    import adbc_driver_manager

# SQLSTATE classes of a refused login: invalid password, invalid authorization.
_REFUSED = ("28P01", "28000")


def _credentials_refused(exc: Exception) -> bool:
    # libpq reports a failed login before any result exists, so the SQLSTATE is often absent
    # and the server's message is the only sign.
    return getattr(exc, "sqlstate", None) in _REFUSED or "authentication failed" in str(exc)


def connect(
    db: DbSettings,
    *,
    error: type[TotesError],
    role: str,
    autocommit: bool = False,
    application_name: str = "totes",
) -> psycopg.Connection:
    """Connect, turning driver errors into ``error`` with a one-line reason (never the password)."""
    try:
        return psycopg.connect(
            **db.conninfo(application_name=application_name), autocommit=autocommit
        )
    except psycopg.OperationalError as exc:
        failure = error(f"cannot connect to the {role} database {db.describe()}: {reason(exc)}")
        failure.credentials_rejected = _credentials_refused(exc)
        raise failure from None


def connect_arrow(
    db: DbSettings, *, error: type[TotesError], role: str, application_name: str = "totes"
) -> tuple[adbc_driver_manager.AdbcDatabase, adbc_driver_manager.AdbcConnection]:
    """Connect through the ADBC PostgreSQL driver (Arrow record batches out of a binary COPY),
    with errors as :func:`connect` gives them. Autocommit: the caller opens its transaction.

    The driver takes its settings only as one libpq connection string, so the password is in
    that string for the length of this call; the driver's messages and these errors never
    show it (tests/lambdas/totes/test_db.py)."""
    # Imported here: the load and the lock import this module and never need the driver.
    import adbc_driver_manager
    import adbc_driver_postgresql

    settings = db.conninfo(application_name=application_name)
    try:
        database = adbc_driver_postgresql.connect(make_conninfo("", **settings))
        try:
            return database, adbc_driver_manager.AdbcConnection(database)
        except BaseException:
            database.close()
            raise
    except adbc_driver_manager.Error as exc:
        failure = error(f"cannot connect to the {role} database {db.describe()}: {reason(exc)}")
        failure.credentials_rejected = _credentials_refused(exc)
        raise failure from None


class FlushedCopyWriter(LibpqWriter):
    """A ``COPY ... FROM STDIN`` writer that hands each write to the server before the next.

    psycopg leaves written data in libpq's output buffer on Linux and flushes only when the
    buffer fills, and libpq grows that buffer instead of waiting: when the server takes rows
    slower than the client encodes them (a warehouse inserting a large fact table), the whole
    table piled up in client memory (about 100 MB more per fact table at scale 100 than at 10).
    Waiting for the socket after each write holds the client to the server's pace instead."""

    def write(self, data: Buffer) -> None:
        super().write(data)
        pgconn = self.connection.pgconn
        while pgconn.flush() == 1:
            # libpq's rule for a non-blocking flush: wait until the socket can take more, and
            # read what the server sends meanwhile (an error ends the COPY there).
            readable, _, _ = select.select([pgconn.socket], [pgconn.socket], [])
            if readable:
                pgconn.consume_input()
