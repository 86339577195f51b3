"""The local disk the stages spool large objects on (a Lambda's ``/tmp``).

Extract, transform and load each build or copy objects there so that memory stays bounded by a
slice, not by a table. The disk is sized by Terraform (``lambda_ephemeral_storage_mb``); when an
object does not fit, the error says so, naming the stage and the table, instead of surfacing as
a bare operating-system error from deep inside a writer.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from totes.errors import DiskFullError, reason

# No space left, over a file size limit, over a quota: the disk is too small for the object.
_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


@contextmanager
def on_local_disk(step: str, *, table: str | None = None, key: object = None) -> Iterator[None]:
    """Turn a full local disk inside the block into a :class:`DiskFullError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        raise DiskFullError(
            f"the local disk is too small for what this step spools there ({reason(exc)}); "
            "the Terraform variable lambda_ephemeral_storage_mb sets each function's /tmp",
            step=step,
            table=table,
            key=key,
        ) from None
