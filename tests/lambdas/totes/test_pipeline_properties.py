"""Random change streams against a small generated source (hypothesis, stateful).

Every example is a fresh source, lakes and warehouse, then a random sequence of source changes
(new payments, real updates, edits that keep ``last_updated``, reverts of an edit, deletes and
re-inserts of a deleted key) interleaved with runs, full scans, crashed runs and backfills of old
windows. At the end a full-scan run must leave a warehouse that ``totes check`` accepts, whose
payment history holds every version an oracle, kept here independently of the pipeline, says it
must hold and none it cannot, and no version recorded twice in a row.

The oracle reasons only from what the source showed: a version current at a full scan must be in
the history; a version newer than everything the previous run saw (a change that bumped
``last_updated``) must be in it once a later run succeeded; nothing that never existed may be.

Profiles: ``ci`` (default, sized for ``make test``), ``long`` (``HYPOTHESIS_PROFILE=long``).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql

from totes.check.check import check
from totes.check.reconcile import format_report
from totes.extract.extractor import run_extract
from totes.lake import LocalLake
from totes.load.loader import load_pending
from totes.load.migrations import migrate
from totes.pipeline import Stack, run_cycle
from totes.settings import DbSettings, ExtractSettings
from totes.transform.transformer import transform_pending
from totes_dev.faults import FaultyLake, InjectedFault, at_write

pytestmark = pytest.mark.slow

settings.register_profile(
    "ci",
    max_examples=6,
    stateful_step_count=10,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

# A payment version as the warehouse keeps it, compared by value (never by the pipeline's hash).
Version = tuple[int, datetime, Decimal, bool, bool]  # id, last_updated, amount, paid, deleted


def _database(admin: DbSettings, name: str, template: str | None = None) -> DbSettings:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(statement)
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


def _drop(admin: DbSettings, *databases: DbSettings) -> None:
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        for db in databases:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(db.database)
                )
            )


@dataclass
class World:
    admin: DbSettings
    template: str
    root: Path


def machine(world: World) -> type[RuleBasedStateMachine]:
    class PaymentHistory(RuleBasedStateMachine):
        """The source's payments change at random; runs of the pipeline follow."""

        @initialize()
        def start(self) -> None:
            suffix = uuid.uuid4().hex[:10]
            self.source = _database(world.admin, f"totes_prop_src_{suffix}", world.template)
            self.warehouse = _database(world.admin, f"totes_prop_wh_{suffix}")
            migrate(self.warehouse)
            root = world.root / suffix
            self.stack = Stack(
                self.source,
                LocalLake(root / "ingestion"),
                LocalLake(root / "processed"),
                self.warehouse,
                ExtractSettings(),
            )
            self.conn = psycopg.connect(**self.source.conninfo(), autocommit=True)
            newest = self._one("SELECT max(last_updated) FROM payment")
            # Changes are an hour apart: beyond the extract's overlap, so the oracle's reading of
            # "newer than what the previous run saw" is exact.
            self.clock: datetime = newest + timedelta(hours=1)
            self.ever: set[Version] = set(self._current())  # every version that ever existed
            self.required: set[Version] = set()  # versions the history must hold
            self.seen_up_to: datetime | None = None  # newest last_updated the last run saw
            self.pending: set[Version] = set()  # bumped versions since the last good run
            self.deleted: set[int] = set()
            self.edits: dict[int, list[Decimal]] = {}
            self.cycle(full_scan=True)

        def teardown(self) -> None:
            if hasattr(self, "conn"):
                self.conn.close()
                _drop(world.admin, self.source, self.warehouse)

        # --- reading the source and the warehouse -------------------------------------------

        def _one(self, query: str, *args: Any) -> Any:
            row = self.conn.execute(query.encode(), args).fetchone()
            assert row is not None
            return row[0]

        def _current(self) -> set[Version]:
            rows = self.conn.execute(
                "SELECT payment_id, last_updated, payment_amount, paid FROM payment"
            ).fetchall()
            return {(int(i), lu, amount, bool(paid), False) for i, lu, amount, paid in rows}

        def _history(self) -> list[Version]:
            with psycopg.connect(**self.warehouse.conninfo()) as conn:
                rows = conn.execute(
                    "SELECT payment_id, last_updated_date + last_updated_time, payment_amount,"
                    " paid, is_deleted FROM fact_payment ORDER BY payment_id, payment_record_id"
                ).fetchall()
            return [
                (int(i), lu, amount, bool(paid), bool(gone)) for i, lu, amount, paid, gone in rows
            ]

        def _ids(self) -> list[int]:
            return [
                int(r[0])
                for r in self.conn.execute(
                    "SELECT payment_id FROM payment ORDER BY payment_id LIMIT 40"
                ).fetchall()
            ]

        def _changed(self, *, bumped: bool) -> None:
            current = self._current()
            self.ever |= current
            if bumped:
                self.clock += timedelta(hours=1)

        # --- source changes ------------------------------------------------------------------

        @rule()
        def new_payment(self) -> None:
            transaction = self._one(
                "INSERT INTO transaction (transaction_type, created_at, last_updated)"
                " VALUES ('SALE', %s, %s) RETURNING transaction_id",
                self.clock,
                self.clock,
            )
            self.conn.execute(
                "INSERT INTO payment (created_at, last_updated, transaction_id, counterparty_id,"
                " payment_amount, currency_id, payment_type_id, paid, payment_date,"
                " company_ac_number, counterparty_ac_number)"
                " SELECT %s, %s, %s, counterparty_id, 12.34, currency_id, payment_type_id, false,"
                " payment_date, company_ac_number, counterparty_ac_number FROM payment"
                " ORDER BY payment_id LIMIT 1",
                (self.clock, self.clock, transaction),
            )
            self._changed(bumped=True)

        @rule(pick=st.integers(0, 39), cents=st.integers(1, 99_999))
        def real_update(self, pick: int, cents: int) -> None:
            ids = self._ids()
            self.conn.execute(
                "UPDATE payment SET payment_amount = %s, paid = NOT paid, last_updated = %s"
                " WHERE payment_id = %s",
                (Decimal(cents) / 100, self.clock, ids[pick % len(ids)]),
            )
            self._changed(bumped=True)

        @rule(pick=st.integers(0, 39), cents=st.integers(1, 99_999))
        def silent_edit(self, pick: int, cents: int) -> None:
            ids = self._ids()
            payment = ids[pick % len(ids)]
            before = self._one("SELECT payment_amount FROM payment WHERE payment_id = %s", payment)
            self.edits.setdefault(payment, []).append(before)
            self.conn.execute(
                "UPDATE payment SET payment_amount = %s WHERE payment_id = %s",
                (Decimal(cents) / 100, payment),
            )
            self._changed(bumped=False)

        @precondition(lambda self: bool(self.edits))
        @rule(pick=st.integers(0, 39))
        def revert_an_edit(self, pick: int) -> None:
            """A -> B -> A: the edit is undone, last_updated untouched all along."""
            payment = sorted(self.edits)[pick % len(self.edits)]
            before = self.edits[payment].pop()
            if not self.edits[payment]:
                del self.edits[payment]
            self.conn.execute(
                "UPDATE payment SET payment_amount = %s WHERE payment_id = %s", (before, payment)
            )
            self._changed(bumped=False)

        @rule(pick=st.integers(0, 39))
        def delete(self, pick: int) -> None:
            ids = self._ids()
            payment = ids[pick % len(ids)]
            self.edits.pop(payment, None)
            self.conn.execute("DELETE FROM payment WHERE payment_id = %s", (payment,))
            self.deleted.add(payment)

        @precondition(lambda self: bool(self.deleted))
        @rule(pick=st.integers(0, 39))
        def reinsert_a_deleted_key(self, pick: int) -> None:
            payment = sorted(self.deleted)[pick % len(self.deleted)]
            transaction = self._one(
                "INSERT INTO transaction (transaction_type, created_at, last_updated)"
                " VALUES ('SALE', %s, %s) RETURNING transaction_id",
                self.clock,
                self.clock,
            )
            self.conn.execute(
                "INSERT INTO payment (payment_id, created_at, last_updated, transaction_id,"
                " counterparty_id, payment_amount, currency_id, payment_type_id, paid,"
                " payment_date, company_ac_number, counterparty_ac_number)"
                " SELECT %s, %s, %s, %s, counterparty_id, 99.99, currency_id, payment_type_id,"
                " true, payment_date, company_ac_number, counterparty_ac_number FROM payment"
                " ORDER BY payment_id LIMIT 1",
                (payment, self.clock, self.clock, transaction),
            )
            self.deleted.discard(payment)
            self._changed(bumped=True)

        # --- runs ------------------------------------------------------------------------------

        def cycle(self, *, full_scan: bool) -> None:
            current = self._current()
            run_cycle(self.stack, full_scan=full_scan)
            self._succeeded(current, full_scan=full_scan)

        def _succeeded(self, current: set[Version], *, full_scan: bool) -> None:
            newest = max((v[1] for v in current), default=None)
            if full_scan:
                self.required |= current
            elif self.seen_up_to is not None:
                self.required |= {v for v in current if v[1] > self.seen_up_to}
            self.seen_up_to = newest

        @rule()
        def run(self) -> None:
            self.cycle(full_scan=False)

        @rule()
        def full_scan(self) -> None:
            self.cycle(full_scan=True)

        @rule(write=st.integers(0, 30))
        def crashed_run(self, write: int) -> None:
            """The storage dies at one write of the cycle: whatever it was doing is lost."""
            crashing = Stack(
                self.source,
                FaultyLake(self.stack.ingestion, at_write(write)),
                FaultyLake(self.stack.processed, at_write(write)),
                self.warehouse,
                self.stack.settings,
            )
            try:
                run_cycle(crashing, full_scan=False)
            except InjectedFault:
                return
            except Exception as exc:  # a stage's own error wrapping the injected one
                if "injected" not in str(exc):
                    raise
                return
            self._succeeded(self._current(), full_scan=False)  # the fault was never reached

        @rule(hours=st.integers(1, 48))
        def backfill_of_an_old_window(self, hours: int) -> None:
            """A backfill run for a window that closed long ago reads nothing new, but must not
            break anything either."""
            # The source's naive wall clock, read as UTC as the extract reads window bounds.
            end = (self.clock - timedelta(hours=hours)).replace(tzinfo=UTC)
            run_extract(
                self.source,
                self.stack.ingestion,
                run_id="backfill",
                window_start=end - timedelta(minutes=20),
                window_end=end,
                full_scan=False,
                settings=self.stack.settings,
            )
            transform_pending(self.stack.ingestion, self.stack.processed)
            load_pending(self.warehouse, self.stack.processed)

        # --- what must hold ----------------------------------------------------------------------

        @invariant()
        def history_is_never_longer_than_what_existed(self) -> None:
            if not hasattr(self, "conn"):
                return
            history = self._history()
            live = {v for v in history if not v[4]}
            assert live <= self.ever, sorted(live - self.ever)[:5]
            for earlier, later in itertools.pairwise(history):
                if earlier[0] == later[0]:
                    assert earlier != later, f"payment {earlier[0]}: one version twice in a row"

        def check_at_the_end(self) -> None:
            self.cycle(full_scan=True)
            report = check(self.source, self.warehouse)
            assert report.ok, format_report(report)
            history = self._history()
            missing = self.required - set(history)
            assert not missing, sorted(missing)[:5]
            gone = {v[0] for v in history if v[4]}
            assert self.deleted <= gone, sorted(self.deleted - gone)[:5]

    return PaymentHistory


def test_random_change_streams_end_in_a_warehouse_the_oracle_accepts(
    pg_admin: DbSettings,
    source_template: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    world = World(pg_admin, source_template("small"), tmp_path_factory.mktemp("streams"))
    base = machine(world)

    class Checked(base):  # type: ignore[misc, valid-type]
        def teardown(self) -> None:
            try:
                if hasattr(self, "conn"):
                    self.check_at_the_end()
            finally:
                super().teardown()

    run_state_machine_as_test(Checked, settings=settings.get_profile(PROFILE))


def test_regression_an_edit_undone_between_full_scans_is_recorded_and_current(
    source_small: DbSettings, new_database: Any, tmp_path: Path
) -> None:
    """Shrunk from a failing stream: silent edit, full scan, the edit undone, full scan. The
    return to the first value is a version of its own, and the current view shows it."""
    stack = Stack(
        source_small,
        LocalLake(tmp_path / "ingestion"),
        LocalLake(tmp_path / "processed"),
        new_database("wh"),
        ExtractSettings(),
    )
    run_cycle(stack, full_scan=True)
    with psycopg.connect(**source_small.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT payment_amount FROM payment WHERE payment_id = 13").fetchone()
        assert row is not None
        original = row[0]
        conn.execute("UPDATE payment SET payment_amount = 857.34 WHERE payment_id = 13")
        run_cycle(stack, full_scan=True)
        conn.execute("UPDATE payment SET payment_amount = %s WHERE payment_id = 13", (original,))
    run_cycle(stack, full_scan=True)
    report = check(stack.source, stack.warehouse)
    assert report.ok, format_report(report)
    with psycopg.connect(**stack.warehouse.conninfo()) as conn:
        amounts = conn.execute(
            "SELECT payment_amount FROM fact_payment WHERE payment_id = 13"
            " ORDER BY payment_record_id"
        ).fetchall()
    assert [a for (a,) in amounts] == [original, Decimal("857.34"), original]
