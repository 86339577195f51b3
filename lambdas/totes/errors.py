"""Typed errors. Each carries a one-line reason naming the step and, where known, the table and key,
because that line is what reaches the alert email."""

from __future__ import annotations


def one_line(exc: BaseException, *, last: bool = False) -> str:
    """A driver error as one line for an alert: its first line (or last, where the driver puts
    the specific cause last, as libpq does for connection failures), else the error's type."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return lines[-1] if last else lines[0]


class TotesError(Exception):
    """Base of every error this pipeline raises on purpose."""

    step = "pipeline"
    exit_code = 1  # what the ``totes`` command exits with

    def __init__(self, reason: str, *, table: str | None = None, key: object = None) -> None:
        self.reason = reason
        self.table = table
        self.key = key
        where = "".join(
            part
            for part in (
                f" table={table}" if table else "",
                f" key={key}" if key is not None else "",
            )
        )
        super().__init__(f"[{self.step}{where}] {reason}")


class SettingsError(TotesError):
    step = "settings"


class SourceError(TotesError):
    """The totesys database could not be read (unreachable, bad credentials, missing table)."""

    step = "extract"


class SchemaDriftError(TotesError):
    step = "extract"


class LakeError(TotesError):
    """Reading or writing the data lake failed."""

    step = "lake"


class ObjectExistsError(LakeError):
    """A write-once key is already taken."""


class CommitConflictError(LakeError):
    """Another writer committed the sequence this batch was about to take. Nothing of the losing
    batch is visible (no manifest names its objects) and the next run captures its rows, so this
    is safe to retry at once."""


class CycleBusyError(TotesError):
    """Another cycle (a Step Functions execution, a ``totes run`` or a replay) holds the lock."""

    step = "lock"
    exit_code = 75  # EX_TEMPFAIL: nothing was done; try again later


class TransformError(TotesError):
    step = "transform"


class WarehouseError(TotesError):
    step = "load"


class SnapshotLoadError(TotesError):
    step = "source-load"
