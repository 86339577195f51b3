from __future__ import annotations

from datetime import datetime

from totes.extract.sql import quote_identifier, rows_sql, tails_sql, window_settings_sql
from totes.tables import LOAD_ORDER, source_table


def test_rows_read_allow_listed_columns_with_enums_as_text() -> None:
    statement = rows_sql(source_table("payment_type"), [], lower=True, upper=True)
    assert statement == (
        'SELECT "payment_type_id", "payment_type_name"::text, "created_at",'
        ' "last_updated" FROM "payment_type"'
        " WHERE \"last_updated\" >= current_setting('totes.window_lower')::timestamp"
        " AND \"last_updated\" < current_setting('totes.window_upper')::timestamp"
        ' ORDER BY "payment_type_id"'
    )


def test_window_clauses_follow_the_bounds_given() -> None:
    table = source_table("currency")
    assert "WHERE" not in rows_sql(table, [], lower=False, upper=False)
    only_upper = rows_sql(table, [], lower=False, upper=True)
    assert " WHERE \"last_updated\" < current_setting('totes.window_upper')" in only_upper
    assert "window_lower" not in only_upper


def test_window_settings_bind_each_bound_the_row_query_reads() -> None:
    assert window_settings_sql(lower=False, upper=False) is None
    assert window_settings_sql(lower=True, upper=True) == (
        "SELECT set_config('totes.window_lower', $1, true),"
        " set_config('totes.window_upper', $2, true)"
    )
    assert window_settings_sql(lower=False, upper=True) == (
        "SELECT set_config('totes.window_upper', $1, true)"
    )


def test_drifted_columns_are_quoted_and_read_as_text() -> None:
    statement = rows_sql(source_table("currency"), ['odd"name'], lower=False, upper=False)
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
