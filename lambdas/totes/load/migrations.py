"""Versioned warehouse migrations: the SQL files in ``migrations/``, applied once each, in order.

``migrate`` holds a transaction-scoped advisory lock, so concurrent callers (two Lambdas cold
starting, a CLI and a Lambda) queue up and the second one finds nothing left to do. Each applied
file is recorded with a checksum; a recorded file whose text changed is refused, because the
warehouse would no longer be what the files describe.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg

from totes.db import connect
from totes.errors import WarehouseError, reason
from totes.settings import DbSettings

MIGRATIONS_TABLE = "warehouse_migration"
# Arbitrary constant shared by every process that changes the warehouse's schema or contents.
WAREHOUSE_LOCK = 0x7075_7465_7301


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    folder = resources.files("totes.load").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(version, rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(f"SELECT version, checksum FROM {MIGRATIONS_TABLE}").fetchall()
    return {str(version): str(checksum) for version, checksum in rows}


def apply_pending(conn: psycopg.Connection) -> list[str]:
    """Apply what is missing inside the caller's transaction; returns the versions applied."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WAREHOUSE_LOCK,))
    _ensure_table(conn)
    applied = _applied(conn)
    done: list[str] = []
    for migration in available():
        recorded = applied.get(migration.version)
        if recorded == migration.checksum:
            continue
        if recorded is not None:
            raise WarehouseError(
                f"migration {migration.version}_{migration.name} was changed after it was applied",
                table=MIGRATIONS_TABLE,
                key=migration.version,
            )
        try:
            conn.execute(migration.sql.encode())
        except psycopg.Error as exc:
            raise WarehouseError(
                f"migration {migration.version}_{migration.name} failed: {reason(exc)}",
                table=MIGRATIONS_TABLE,
                key=migration.version,
            ) from None
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
        done.append(migration.version)
    return done


def migrate(db: DbSettings) -> list[str]:
    """Bring the warehouse schema up to date; idempotent. Returns the versions applied now."""
    with connect(db, error=WarehouseError, role="warehouse") as conn:
        done = apply_pending(conn)
        conn.commit()
    return done


def missing(conn: psycopg.Connection) -> list[str]:
    """Versions not yet applied (all of them when the warehouse was never migrated)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()
    applied = _applied(conn) if exists and exists[0] else {}
    return [m.version for m in available() if applied.get(m.version) != m.checksum]
