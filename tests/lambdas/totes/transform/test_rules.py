from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from totes.errors import TransformError
from totes.keys import KeySet
from totes.transform.rules import CURRENCY_NAMES, full_model, model, upsert, warehouse_schema


def one(table: pa.Table, key: str, value: int) -> pa.Table:
    return table.filter(pc.equal(table[key], value))


def edited(table: pa.Table, **values: list[Any]) -> pa.Table:
    for column, new in values.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, pa.array(new, table.schema.field(column).type))
    return table


@pytest.fixture(scope="module")
def nov_model(nov_source: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return full_model(nov_source)


def test_full_model_has_one_row_per_source_row_and_exact_types(
    nov_model: dict[str, pa.Table], nov_source: dict[str, pa.Table]
) -> None:
    assert nov_model["fact_sales_order"].num_rows == 11_187
    assert nov_model["fact_purchase_order"].num_rows == 4_649
    assert nov_model["fact_payment"].num_rows == 15_836
    assert nov_model["dim_design"].num_rows == 473
    for name, table in nov_model.items():
        assert table.schema == warehouse_schema(name), name
    dates = nov_model["dim_date"].column("date_id")
    assert dates[0].as_py() == date(2022, 1, 1)
    assert dates[-1].as_py() == date(2024, 12, 31)


def test_sales_fact_renames_staff_and_parses_dates(nov_source: dict[str, pa.Table]) -> None:
    sale = one(nov_source["sales_order"], "sales_order_id", 1)
    row = model({"sales_order": sale}, full_state(nov_source)).tables["fact_sales_order"]
    got = row.to_pylist()[0]
    src = sale.to_pylist()[0]
    assert got["sales_staff_id"] == src["staff_id"]
    assert "staff_id" not in got
    assert got["agreed_payment_date"] == date.fromisoformat(src["agreed_payment_date"])
    assert got["agreed_delivery_date"] == date.fromisoformat(src["agreed_delivery_date"])
    assert got["unit_price"] == src["unit_price"]
    assert isinstance(got["unit_price"], Decimal)
    assert got["created_time"] == src["created_at"].time()
    assert got["last_updated_date"] == src["last_updated"].date()


def test_purchase_fact_keeps_staff_id_and_payment_fact_drops_account_numbers(
    nov_model: dict[str, pa.Table],
) -> None:
    assert "staff_id" in nov_model["fact_purchase_order"].column_names
    payment = nov_model["fact_payment"].column_names
    assert "company_ac_number" not in payment
    assert "counterparty_ac_number" not in payment
    assert payment[-1] == "payment_date"


def test_currency_names_come_from_the_fixed_lookup(nov_model: dict[str, pa.Table]) -> None:
    rows = nov_model["dim_currency"].to_pylist()
    assert {r["currency_code"]: r["currency_name"] for r in rows} == CURRENCY_NAMES
    assert CURRENCY_NAMES == {"GBP": "Pound Sterling", "USD": "US Dollar", "EUR": "Euro"}


def test_transaction_order_ids_stay_nullable_integers(nov_model: dict[str, pa.Table]) -> None:
    table = nov_model["dim_transaction"]
    assert table.schema.field("sales_order_id").type == pa.int64()
    assert table.column("sales_order_id").null_count == 4_649
    assert table.column("purchase_order_id").null_count == 11_187


def test_staff_location_is_kept_exactly_as_stored(nov_model: dict[str, pa.Table]) -> None:
    assert "Leds" in set(nov_model["dim_staff"].column("location").to_pylist())


def full_state(source: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return model(source, {}).state


def test_references_resolve_against_a_table_known_only_by_its_keys(
    nov_source: dict[str, pa.Table],
) -> None:
    state = {t: rows for t, rows in full_state(nov_source).items() if t != "transaction"}
    payments = nov_source["payment"].sort_by("payment_id").slice(0, 5)
    ids = payments.column("transaction_id").to_pylist()
    result = model({"payment": payments}, state, {"transaction": KeySet.of(pa.array(ids[:3]))})
    assert result.tables["fact_payment"].column("transaction_id").to_pylist() == ids[:3]
    quarantined = result.quarantine["payment"]
    assert quarantined.column("key").to_pylist() == payments.column("payment_id").to_pylist()[3:]
    assert all(
        r.startswith("transaction_id refers to a transaction")
        for r in quarantined.column("reason").to_pylist()
    )
    # Rows of such a table add to its keys; its state is then the batch's rows alone.
    extra = edited(one(nov_source["transaction"], "transaction_id", ids[3]), transaction_id=[10**9])
    after = model({"transaction": extra}, state, {"transaction": KeySet.of(pa.array(ids[:3]))})
    known = after.known["transaction"]
    assert known.contains(pa.array([*ids[:3], 10**9, ids[4]])).to_pylist() == [True] * 4 + [False]
    assert after.state["transaction"].column("transaction_id").to_pylist() == [10**9]


def test_new_staff_joins_a_department_known_only_from_the_state(
    nov_source: dict[str, pa.Table],
) -> None:
    state = full_state(nov_source)
    newcomer = edited(one(nov_source["staff"], "staff_id", 1), staff_id=[99])
    result = model({"staff": newcomer}, state)
    staff = result.tables["dim_staff"].to_pylist()
    department = one(nov_source["department"], "department_id", newcomer["department_id"][0])
    assert [s["staff_id"] for s in staff] == [99]
    assert staff[0]["department_name"] == department["department_name"][0].as_py()
    assert result.tables["dim_location"].num_rows == 0


def test_unknown_references_and_nulls_are_quarantined_with_every_reason(
    nov_source: dict[str, pa.Table],
) -> None:
    state = full_state(nov_source)
    staff = edited(nov_source["staff"].sort_by("staff_id").slice(0, 2), department_id=[999, 1])
    staff = edited(staff, email_address=[None, "x@terrifictotes.com"])
    department = edited(one(nov_source["department"], "department_id", 3), location=[None])
    result = model({"staff": staff, "department": department}, state)
    records = result.quarantine["staff"].to_pylist()
    assert [r["key"] for r in records] == [1]
    assert records[0]["reason"] == (
        "email_address is NULL; "
        "department_id refers to a department in neither the batch nor the current state"
    )
    assert result.quarantine["department"].to_pylist()[0]["reason"] == "location is NULL"
    # A quarantined department changes nothing: its staff keep their rows, it keeps its state.
    assert result.tables["dim_staff"].column("staff_id").to_pylist() == [2]
    assert one(result.state["department"], "department_id", 3)["location"][0].as_py()


def test_unknown_currency_code_is_a_bad_row(nov_source: dict[str, pa.Table]) -> None:
    currency = edited(
        nov_source["currency"].sort_by("currency_id"), currency_code=["GBP", "JPY", None]
    )
    result = model({"currency": currency}, {})
    reasons = {r["key"]: r["reason"] for r in result.quarantine["currency"].to_pylist()}
    assert reasons == {2: "currency_code is not one of EUR, GBP, USD", 3: "currency_code is NULL"}
    assert result.tables["dim_currency"].column("currency_id").to_pylist() == [1]


def test_null_address_fields_stay_null_in_both_dimensions(nov_model: dict[str, pa.Table]) -> None:
    location = nov_model["dim_location"]
    assert location.column("address_line_2").null_count == 20
    assert location.column("district").null_count == 14
    counterparty = nov_model["dim_counterparty"]
    assert counterparty.column("counterparty_legal_district").null_count > 0
    assert "None" not in counterparty.column("counterparty_legal_district").to_pylist()


def test_a_contract_breaking_column_type_stops_the_batch(nov_source: dict[str, pa.Table]) -> None:
    design = nov_source["design"]
    broken = design.set_column(0, "design_id", pc.cast(design["design_id"], pa.string()))
    with pytest.raises(TransformError, match=r"table=design.*design_id is string"):
        model({"design": broken}, {})


def test_a_key_twice_in_one_batch_stops_the_batch(nov_source: dict[str, pa.Table]) -> None:
    twice = pa.concat_tables([nov_source["currency"], nov_source["currency"]])
    with pytest.raises(TransformError, match="table=currency"):
        model({"currency": twice}, {})


def test_times_keep_milliseconds_in_the_facts(nov_model: dict[str, pa.Table]) -> None:
    times = nov_model["fact_payment"].column("last_updated_time").to_pylist()
    assert any(t.microsecond % 1_000_000 for t in times)
    assert time(0) <= min(times)


def test_the_state_after_an_upsert_is_in_key_order_whatever_order_rows_came_in(
    nov_source: dict[str, pa.Table],
) -> None:
    staff = nov_source["staff"].sort_by("staff_id")
    shuffled = staff.take(pa.array([3, 0, 2, 1, *range(4, staff.num_rows)]))
    for rows in (staff, shuffled):
        state = upsert(None, rows, "staff")
        assert state.column("staff_id").to_pylist() == sorted(staff.column("staff_id").to_pylist())
        assert state.equals(upsert(None, staff, "staff"))
    # A later batch's rows replace theirs and the result is still in key order.
    renamed = staff.slice(0, 2).set_column(
        staff.schema.get_field_index("first_name"), "first_name", pa.array(["A", "B"])
    )
    after = upsert(upsert(None, staff, "staff"), renamed, "staff")
    assert after.column("staff_id").to_pylist() == sorted(staff.column("staff_id").to_pylist())
    assert after.column("first_name").to_pylist()[:2] == ["A", "B"]
