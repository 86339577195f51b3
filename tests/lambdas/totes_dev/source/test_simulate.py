"""The simulator's report must be exactly the difference between the database before and after."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from totes.cli import main
from totes.settings import DbSettings
from totes.tables import LOAD_ORDER, source_table
from totes_dev.errors import DevSourceError
from totes_dev.source.schema import fingerprints
from totes_dev.source.simulate import simulate

Versions = dict[str, dict[int, tuple[str, datetime]]]


def _versions(db: DbSettings) -> Versions:
    out: Versions = {}
    with psycopg.connect(**db.conninfo()) as conn:
        for name in LOAD_ORDER:
            t = source_table(name)
            rows = conn.execute(
                f"SELECT {t.primary_key}, md5(x::text), last_updated FROM {t.quoted} x"
            ).fetchall()
            out[name] = {pk: (digest, updated) for pk, digest, updated in rows}
    return out


def _diff(before: Versions, after: Versions) -> dict[str, dict[str, list[int]]]:
    kinds: dict[str, dict[str, list[int]]] = {
        "inserted": {}, "updated": {}, "silent_edits": {}, "deleted": {},
    }  # fmt: skip
    for name in LOAD_ORDER:
        old, new = before[name], after[name]
        found = {
            "inserted": sorted(set(new) - set(old)),
            "deleted": sorted(set(old) - set(new)),
            "updated": sorted(k for k in old.keys() & new.keys()
                              if old[k][0] != new[k][0] and old[k][1] != new[k][1]),
            "silent_edits": sorted(k for k in old.keys() & new.keys()
                                   if old[k][0] != new[k][0] and old[k][1] == new[k][1]),
        }  # fmt: skip
        for kind, ids in found.items():
            if ids:
                kinds[kind][name] = ids
    return kinds


def _without_now(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "now"}


def test_report_is_exactly_what_changed_with_edits_and_deletes(source_nov: DbSettings) -> None:
    before = _versions(source_nov)

    report = simulate(source_nov, minutes=600, seed=5, silent_edits=True, deletes=True)

    assert _without_now(report) == _diff(before, _versions(source_nov))
    # from the newest real timestamp (2024-11-15 14:40:10.188), 10 hours on
    assert report["now"] == "2024-11-16T00:40:10.188"
    assert set(report["silent_edits"]) == {"sales_order", "purchase_order", "design"}
    assert report["deleted"]["sales_order"]
    assert report["deleted"]["payment"]
    inserted = report["inserted"]
    assert len(inserted["transaction"]) == len(inserted["sales_order"]) + len(
        inserted["purchase_order"]
    )


def test_new_triples_share_created_at_inside_working_hours(source_nov: DbSettings) -> None:
    report = simulate(source_nov, minutes=60 * 24 * 3, seed=2, silent_edits=False, deletes=False)
    with psycopg.connect(**source_nov.conninfo()) as conn:
        bad = conn.execute(
            "SELECT count(*) FROM sales_order s "
            'JOIN "transaction" t USING (sales_order_id) JOIN payment p USING (transaction_id) '
            "WHERE s.sales_order_id = ANY(%s) AND (t.created_at <> s.created_at "
            "OR p.created_at <> s.created_at OR p.payment_amount <> s.units_sold * s.unit_price "
            "OR extract(isodow FROM s.created_at) > 5 "
            "OR extract(hour FROM s.created_at) NOT BETWEEN 8 AND 18 "
            "OR s.created_at <= '2024-11-15 14:40:10.188' OR s.created_at > %s)",
            (report["inserted"]["sales_order"], datetime.fromisoformat(report["now"])),
        ).fetchone()
        # an updated payment either flipped to paid at 07:55 on its payment_date, or follows
        # its sales order's new units_sold at the simulated now
        flipped = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE paid AND last_updated::time "
            "BETWEEN '07:55:10' AND '07:55:12' AND last_updated::date = payment_date::date), "
            "count(*) FILTER (WHERE last_updated = %s AND payment_amount = "
            '(SELECT s.units_sold * s.unit_price FROM "transaction" t JOIN sales_order s '
            "USING (sales_order_id) WHERE t.transaction_id = p.transaction_id)) "
            "FROM payment p WHERE payment_id = ANY(%s)",
            (datetime.fromisoformat(report["now"]), report["updated"]["payment"]),
        ).fetchone()
    assert bad == (0,)
    # Friday afternoon to Monday night: two weekday mornings of flips, and Monday's sales
    assert len(report["inserted"]["sales_order"]) > 5
    assert flipped is not None
    assert flipped[0] == flipped[1] + flipped[2]
    assert flipped[1] > 10
    assert flipped[2] == len(report["updated"]["sales_order"]) > 0


def test_quiet_window_still_inserts_and_report_matches(source_generated: DbSettings) -> None:
    before = _versions(source_generated)
    # generated history ends on Friday 2024-11-15 before 14:40: 10 minutes is still working time,
    # but a run of simulations eventually crosses the weekend with nothing working
    first = simulate(source_generated, minutes=10, seed=1, silent_edits=False, deletes=False)
    night = simulate(source_generated, minutes=60 * 20, seed=1, silent_edits=True, deletes=True)
    quiet = simulate(source_generated, minutes=30, seed=3, silent_edits=False, deletes=False)
    after = _versions(source_generated)

    assert quiet["now"] > night["now"] > first["now"]
    # the Saturday morning window has no working minute, yet a sale and a purchase appear
    assert len(quiet["inserted"]["sales_order"]) == len(quiet["inserted"]["purchase_order"]) == 1
    merged = _diff(before, after)
    inserted = set(merged["inserted"].get("sales_order", []))
    for report in (first, night, quiet):
        assert set(report["inserted"]["sales_order"]) <= inserted


def test_same_seed_same_changes(
    source_nov: DbSettings, source_feb: DbSettings, pg_admin: DbSettings
) -> None:
    twin = DbSettings(
        pg_admin.host, pg_admin.port, pg_admin.user, pg_admin.password, f"{source_nov.database}_b"
    )
    with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(twin.database), sql.Identifier(source_nov.database)
            )
        )
    try:
        one = simulate(source_nov, minutes=300, seed=9, silent_edits=True, deletes=True)
        two = simulate(twin, minutes=300, seed=9, silent_edits=True, deletes=True)
        assert one == two
        with psycopg.connect(**source_nov.conninfo()) as a, psycopg.connect(**twin.conninfo()) as b:
            assert fingerprints(a) == fingerprints(b)
    finally:
        with psycopg.connect(**pg_admin.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(twin.database))
            )
    with pytest.raises(DevSourceError, match="minutes must be positive"):
        simulate(source_feb, minutes=0, seed=1)


def test_cli_simulate_prints_the_report(
    source_feb: DbSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = source_feb
    for name, value in (("PG_HOST", db.host), ("PG_PORT", str(db.port)), ("PG_USER", db.user),
                        ("PG_PASSWORD", db.password), ("PG_DATABASE", db.database)):  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOTES_SOURCE_SECRET_ID", raising=False)
    before = _versions(db)

    assert main(["source", "simulate", "--minutes", "30", "--seed", "4", "--deletes"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["seed"] == 4
    assert {k: printed[k] for k in ("inserted", "updated", "silent_edits", "deleted")} == _diff(
        before, _versions(db)
    )
