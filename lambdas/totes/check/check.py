"""``totes check``: reconcile the warehouse with the source's current rows.

The source is read in one repeatable-read snapshot, remodelled with the transform's own pure
rules (``totes.transform.rules.model``), and compared with the warehouse's dimensions and
``*_current`` views.
The warehouse is also checked for duplicated fact versions, removed versions and references
without a dimension row.
"""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from totes.check import reconcile
from totes.contracts.ingestion import source_schema
from totes.contracts.warehouse import DIM_DATE, DIMENSION_KEYS, DIMENSIONS, FACTS, WarehouseTable
from totes.db import connect
from totes.errors import WarehouseError, reason
from totes.extract.rows import SnapshotRows
from totes.load.loader import require_migrated
from totes.load.merge import ident
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER as SOURCE_ORDER
from totes.tables import source_table
from totes.transform.rules import model


def read_source(db: DbSettings) -> dict[str, pa.Table]:
    """The current rows of the 11 source tables, with the exact landing types."""
    tables: dict[str, pa.Table] = {}
    with SnapshotRows.open(db, snapshot=None, application_name="totes-check") as rows:
        for name in SOURCE_ORDER:
            spec = source_table(name)
            with rows.start(spec, (), None, None) as read:
                batches = list(read)
            schema = source_schema(name)  # NULLs where the source should have none: the
            # rules decide, as in the pipeline
            if batches:
                table = pa.Table.from_batches(batches).select(spec.column_names)
                tables[name] = table.cast(schema)
            else:
                tables[name] = schema.empty_table()
    return tables


def _read_warehouse(conn: psycopg.Connection, relation: str, spec: WarehouseTable) -> pa.Table:
    columns = ", ".join(ident(c) for c in spec.column_names)
    schema = pa.schema([(c.name, c.arrow_type) for c in spec.columns])
    block = bytearray()
    with conn.cursor().copy(
        f"COPY (SELECT {columns} FROM {ident(relation)}) TO STDOUT (FORMAT csv)"
    ) as copy:
        for chunk in copy:
            block += chunk
    if not block:
        return schema.empty_table()
    return pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(block)),
        read_options=pacsv.ReadOptions(column_names=spec.column_names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(schema.names, schema.types, strict=True)),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def check(source: DbSettings, warehouse: DbSettings) -> reconcile.CheckReport:
    remodelled = model(read_source(source), {})
    tables = remodelled.tables
    # A key whose current source row breaks a rule is quarantined; the warehouse keeps its last
    # valid version, if it ever had one. It is held back, not a difference.
    held_back = {
        table: {int(key) for key in rows.column("key").to_pylist() if key is not None}
        for table, rows in remodelled.quarantine.items()
    }
    diffs: list[reconcile.TableDiff] = []
    problems: list[str] = []
    with connect(warehouse, error=WarehouseError, role="warehouse") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        require_migrated(conn)
        try:
            for spec in (DIM_DATE, *DIMENSIONS):
                actual = _read_warehouse(conn, spec.name, spec)
                # Dimensions keep the rows of keys deleted at the source (fact history refers
                # to them), and dim_date every date once referenced.
                diffs.append(
                    reconcile.compare_table(spec, tables[spec.name], actual, allow_extra=True)
                )
            for fact in FACTS:
                actual = _read_warehouse(conn, fact.current_view, fact)
                diffs.append(
                    reconcile.compare_table(
                        fact, tables[fact.name], actual, held_back=held_back[str(fact.source)]
                    )
                )
                problems += reconcile.duplicate_problems(
                    fact.name, conn.execute(reconcile.duplicate_versions_sql(fact)).fetchall()
                )
                count, top = conn.execute(reconcile.record_gaps_sql(fact)).fetchone() or (0, 0)
                problems += reconcile.gap_problems(fact.name, int(count), int(top))
                problems += reconcile.reference_problems(
                    fact.name,
                    conn.execute(
                        reconcile.unresolved_references_sql(fact, DIMENSION_KEYS)
                    ).fetchall(),
                )
        except psycopg.Error as exc:
            raise WarehouseError(f"reading the warehouse failed: {reason(exc)}") from None
    return reconcile.CheckReport(diffs, problems)
