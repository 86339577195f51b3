"""Opening PostgreSQL connections with errors that say which database and step failed."""

from __future__ import annotations

import psycopg

from totes.errors import TotesError
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
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise error(
            f"cannot connect to the {role} database {db.describe()}: {first_line}"
        ) from None
