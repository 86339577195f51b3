"""Batch identity and manifest keys (pure: no I/O).

A batch id is ``YYYYMMDDTHHMMSSmmmZ-xxxxxxxx``: sortable by commit time and unique. Manifest keys
put an inverted timestamp first so that a plain listing returns the newest batch first; finding
the latest committed batch is then one short list call however old the lake is.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

MANIFEST_PREFIX = "_manifests/"
_INVERT_FROM = 9_999_999_999_999
_BATCH_ID = re.compile(r"^(\d{8}T\d{9})Z-([0-9a-f]{8})$")


def new_batch_id(now: datetime) -> str:
    now = now.astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


def batch_time(batch_id: str) -> datetime:
    match = _BATCH_ID.match(batch_id)
    if not match:
        raise ValueError(f"{batch_id!r} is not a batch id")
    return datetime.strptime(match.group(1) + "000", "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)


def manifest_key(batch_id: str) -> str:
    millis = int(batch_time(batch_id).timestamp() * 1000)
    return f"{MANIFEST_PREFIX}{_INVERT_FROM - millis:013d}-{batch_id}.json"


def batch_id_of_manifest(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name[14:-5]


def dated_key(prefix: str, batch_id: str, suffix: str = ".parquet") -> str:
    """``<prefix>/<YYYY>/<MM>/<DD>/<batch id><suffix>``, dated by the batch's commit time."""
    when = batch_time(batch_id)
    return f"{prefix}/{when:%Y/%m/%d}/{batch_id}{suffix}"
