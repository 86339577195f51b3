from __future__ import annotations

from datetime import datetime

from totes.extract.sql import copy_rows_sql, quote_identifier, tails_sql
from totes.tables import LOAD_ORDER, source_table


def test_copy_reads_allow_listed_columns_with_enums_as_text() -> None:
    statement = copy_rows_sql(source_table("payment_type"), [], lower=True, upper=True)
    assert statement == (
        'COPY (SELECT "payment_type_id", "payment_type_name"::text, "created_at",'
        ' "last_updated" FROM "payment_type"'
        ' WHERE "last_updated" >= %s AND "last_updated" < %s'
        ' ORDER BY "payment_type_id") TO STDOUT (FORMAT csv)'
    )


def test_window_clauses_follow_the_bounds_given() -> None:
    table = source_table("currency")
    assert "WHERE" not in copy_rows_sql(table, [], lower=False, upper=False)
    only_upper = copy_rows_sql(table, [], lower=False, upper=True)
    assert ' WHERE "last_updated" < %s ORDER BY' in only_upper
    assert only_upper.count("%s") == 1


def test_drifted_columns_are_quoted_and_read_as_text() -> None:
    statement = copy_rows_sql(source_table("currency"), ['odd"name'], lower=False, upper=False)
    assert '"last_updated", "odd""name"::text FROM' in statement


def test_quote_identifier_doubles_quotes() -> None:
    assert quote_identifier('a"b') == '"a""b"'


def test_tails_query_binds_one_parameter_per_placeholder() -> None:
    tables = [source_table(name) for name in LOAD_ORDER]
    lowers = [None if i % 2 else datetime(2024, 1, 1) for i in range(len(tables))]
    upper = datetime(2024, 2, 1)
    query, params = tails_sql(tables, lowers, upper)
    assert query.count("%s") == len(params)
    assert query.count(" UNION ALL ") == len(tables) - 1
    assert params[:3] == ["address", datetime(2024, 1, 1), upper]
    assert params[3:5] == ["counterparty", upper]
    assert 'FROM "transaction"' in query
