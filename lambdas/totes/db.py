"""Opening PostgreSQL connections with errors that say which database and step failed."""

from __future__ import annotations

import psycopg

from totes.errors import TotesError, reason
from totes.settings import DbSettings

# SQLSTATE classes of a refused login: invalid password, invalid authorization.
_REFUSED = ("28P01", "28000")


def _credentials_refused(exc: psycopg.Error) -> bool:
    # libpq reports a failed login before any result exists, so the SQLSTATE is often absent
    # and the server's message is the only sign.
    return exc.sqlstate in _REFUSED or "authentication failed" in str(exc)


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
