"""Opening PostgreSQL connections with errors that say which database and step failed."""

from __future__ import annotations

import psycopg

from totes.errors import TotesError, one_line
from totes.settings import DbSettings


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
        reason = one_line(exc, last=True)
        raise error(f"cannot connect to the {role} database {db.describe()}: {reason}") from None
