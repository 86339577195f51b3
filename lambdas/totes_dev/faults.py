"""Faults on purpose, for the tests that prove recovery: a lake whose storage dies at a chosen
write, and a warehouse table that refuses its next insert.

Both wrap the real thing (the real lake, a real PostgreSQL trigger); they only decide when a
write fails, which is what a crash, a lost network or a killed Lambda looks like from the code.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from totes.lake import Lake, Payload, ReadsThrough
from totes.settings import DbSettings


class InjectedFault(Exception):  # noqa: N818 - it is the fault, not an error class of ours
    """What a fault raises: a plain exception, as a crash of the storage or the process is."""


@dataclass
class FaultyLake(ReadsThrough):
    """``inner``, except that the write ``fail_on`` picks fails.

    ``fail_on(key, index)`` gets each key about to be written and how many writes came before it;
    when it answers True the write fails: ``before`` (nothing written) or after the object was
    written (``after``, as when the process dies right after a write it was not told about).
    Only the first matching write fails; later ones go through. Writes from several threads
    (the extract's background writes) are taken one at a time, so that indices stay exact.
    """

    inner: Lake
    fail_on: Callable[[str, int], bool]
    after: bool = False
    written: list[str] = field(default_factory=list)
    failed: str | None = None
    uri: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.uri = self.inner.uri

    def put(self, key: str, data: Payload) -> None:
        with self._lock:
            self._put(key, data)

    def _put(self, key: str, data: Payload) -> None:
        strike = self.failed is None and self.fail_on(key, len(self.written))
        if strike and not self.after:
            self.failed = key
            raise InjectedFault(f"injected storage failure before writing {key}")
        self.inner.put(key, data)
        self.written.append(key)
        if strike:
            self.failed = key
            raise InjectedFault(f"injected crash after writing {key}")


def at_write(n: int) -> Callable[[str, int], bool]:
    """The ``n``-th write (0-based)."""
    return lambda key, index: index == n


def at_key(pattern: str) -> Callable[[str, int], bool]:
    """The first write whose key matches ``pattern`` (a regular expression)."""
    compiled = re.compile(pattern)
    return lambda key, index: compiled.search(key) is not None


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def refuse_next_insert(db: DbSettings, table: str) -> None:
    """Make the next INSERT into ``table`` fail inside its transaction (a crash of the load at
    that point, as the database sees it), once: the trigger counts with a sequence, which a
    rollback does not undo, so the retry after it goes through."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"{table!r} is not a table name")
    name = sql.Identifier(f"totes_fault_{table}")
    with psycopg.connect(**db.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SEQUENCE {}").format(name))
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN"
                "  IF nextval({sequence}) = 1 THEN"
                "   RAISE EXCEPTION 'injected crash inserting into %', TG_TABLE_NAME;"
                "  END IF;"
                "  RETURN NULL;"
                " END $$"
            ).format(name=name, sequence=sql.Literal(f"totes_fault_{table}"))
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {name} BEFORE INSERT ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            ).format(name=name, table=sql.Identifier(table))
        )
