"""``totes warehouse rebuild``: the lake is the system of record, so the warehouse can always be
dropped and replayed from it. Dropping and re-creating the schema is one transaction under the
warehouse lock; the replay then loads batch after batch exactly as the Lambda does, and since
record ids are assigned in capture order without gaps the result is the same row for row."""

from __future__ import annotations

from typing import Any

import psycopg

from totes.db import connect
from totes.errors import WarehouseError
from totes.lake import Lake
from totes.settings import DbSettings
from totes.warehouse.loader import LEDGER_TABLE, load_pending
from totes.warehouse.merge import ident
from totes.warehouse.migrations import MIGRATIONS_TABLE, WAREHOUSE_LOCK, apply_pending
from totes.warehouse.spec import FACTS, LOAD_ORDER

OWNED_TABLES = (
    *(t.name for t in reversed(LOAD_ORDER)),
    LEDGER_TABLE,
    MIGRATIONS_TABLE,
)


def drop_and_migrate(db: DbSettings) -> None:
    with connect(db, error=WarehouseError, role="warehouse") as conn:
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WAREHOUSE_LOCK,))
            for fact in FACTS:
                conn.execute(f"DROP VIEW IF EXISTS {ident(fact.current_view)}")
            for name in OWNED_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {ident(name)}")
        except psycopg.Error as exc:
            raise WarehouseError(
                f"dropping the warehouse failed: {str(exc).strip().splitlines()[0]}"
            ) from None
        apply_pending(conn)
        conn.commit()


def rebuild(db: DbSettings, processed: Lake) -> dict[str, Any]:
    drop_and_migrate(db)
    return load_pending(db, processed)
