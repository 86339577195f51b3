"""Typed errors. Each carries a one-line reason naming the step and, where known, the table and key,
because that line is what reaches the alert email."""

from __future__ import annotations

_MAX_REASON = 1000


def reason(exc: BaseException) -> str:
    """A driver or AWS error as the one line an alert carries, keeping its cause.

    An AWS error gives its code and message; a PostgreSQL error its message, detail and hint; a
    libpq connection failure every line it wrote (the specific cause, "Connection refused", and
    the advice after it). Lines are joined with "; " and whitespace is collapsed, so no tab or
    newline reaches the alert. Other errors keep their type name, which is often the cause.
    """
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if isinstance(error, dict) and error.get("Code"):
        text = f"{error['Code']}: {error.get('Message') or ''}".rstrip(": ")
    elif primary:
        parts = (
            primary,
            getattr(diag, "message_detail", None),
            getattr(diag, "message_hint", None),
        )
        text = "\n".join(part for part in parts if part)
    elif type(exc).__module__.startswith("psycopg"):
        text = str(exc)
    elif type(exc).__module__.startswith("adbc_driver_manager"):
        # The ADBC driver appends the whole query; the step and table already say which one.
        text = str(exc).split("\nQuery was:", 1)[0]
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    lines = (" ".join(line.split()) for line in text.splitlines())
    joined = "; ".join(line for line in lines if line) or type(exc).__name__
    return joined if len(joined) <= _MAX_REASON else joined[: _MAX_REASON - 3] + "..."


class TotesError(Exception):
    """Base of every error this pipeline raises on purpose."""

    step = "pipeline"
    exit_code = 1  # what the ``totes`` command exits with
    # The database refused the credentials: a re-read secret may hold the rotated password.
    credentials_rejected = False

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


class DiskFullError(TotesError):
    """A stage's local disk (a Lambda's /tmp) could not hold the objects it spools there. The
    step is the stage's, so that the alert names which function needs more room."""

    def __init__(
        self, reason: str, *, step: str, table: str | None = None, key: object = None
    ) -> None:
        self.step = step
        super().__init__(reason, table=table, key=key)


class CycleBusyError(TotesError):
    """Another cycle (a Step Functions execution, a ``totes run`` or a replay) holds the lock."""

    step = "lock"
    exit_code = 75  # EX_TEMPFAIL: nothing was done; try again later


class TransformError(TotesError):
    step = "transform"


class WarehouseError(TotesError):
    step = "load"
