"""``totes warehouse rebuild``: the lake is the system of record, so the warehouse can always be
dropped and replayed from it. Dropping and re-creating the schema is one transaction under the
warehouse lock; the replay then loads batch after batch exactly as the Lambda does, and since
record ids are assigned in capture order without gaps the result is the same row for row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from totes.contracts.warehouse import FACTS, LOAD_ORDER
from totes.db import connect
from totes.errors import WarehouseError, reason
from totes.lake import Lake
from totes.load.loader import LEDGER_TABLE, load_pending
from totes.load.merge import ident
from totes.load.migrations import MIGRATIONS_TABLE, WAREHOUSE_LOCK, apply_pending
from totes.settings import DbSettings

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
            raise WarehouseError(f"dropping the warehouse failed: {reason(exc)}") from None
        apply_pending(conn)
        conn.commit()


def rebuild(
    db: DbSettings, processed: Lake, *, on_batch: Callable[[int, str], None] | None = None
) -> dict[str, Any]:
    drop_and_migrate(db)
    return load_pending(db, processed, on_batch=on_batch)
