"""Batch identity, manifest keys and the rule that orders committed batches (pure: no I/O).

A batch id is ``YYYYMMDDTHHMMSSmmmZ-xxxxxxxx``: sortable by start time and unique; data objects
are named by it. A batch's *sequence* (1, 2, 3 ...) is its place in the lake's history, and its
manifest's key is derived from the sequence alone, so a lake can hold at most one committed batch
per sequence: the commit is a conditional write of that key and only one writer can win it.

Keys invert the sequence (``999 999 999 999 - sequence``, 13 digits) so that a plain listing
returns the newest batch first: finding the latest committed batch is one short list call however
old the lake is.

Lakes written before this rule keyed manifests by time and batch id
(``<9 999 999 999 999 - epoch ms>-<batch id>.json``), which let two racing writers commit the
same sequence. Those keys always sort after sequence keys, and :func:`select_chain` reads them by
a deterministic rule.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

MANIFEST_PREFIX = "_manifests/"
MAX_SEQUENCE = 999_999_999_999
_BATCH_ID = re.compile(r"^(\d{8}T\d{9})Z-([0-9a-f]{8})$")
_SEQUENCE_KEY = re.compile(r"^_manifests/(\d{13})\.json$")
_LEGACY_KEY = re.compile(r"^_manifests/\d{13}-(\d{8}T\d{9}Z-[0-9a-f]{8})\.json$")


def new_batch_id(now: datetime) -> str:
    now = now.astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


def batch_time(batch_id: str) -> datetime:
    match = _BATCH_ID.match(batch_id)
    if not match:
        raise ValueError(f"{batch_id!r} is not a batch id")
    return datetime.strptime(match.group(1) + "000", "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)


def manifest_key(sequence: int) -> str:
    """The one key a batch of ``sequence`` can be committed under."""
    if not 0 < sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} is out of range")
    return f"{MANIFEST_PREFIX}{MAX_SEQUENCE - sequence:013d}.json"


def sequence_of_manifest(key: str) -> int | None:
    """The sequence a manifest key stands for; None for a key of the earlier, time-based form."""
    match = _SEQUENCE_KEY.match(key)
    return None if match is None else MAX_SEQUENCE - int(match.group(1))


def is_legacy_manifest(key: str) -> bool:
    return _LEGACY_KEY.match(key) is not None


def dated_key(prefix: str, batch_id: str, suffix: str = ".parquet") -> str:
    """``<prefix>/<YYYY>/<MM>/<DD>/<batch id><suffix>``, dated by the batch's start time."""
    when = batch_time(batch_id)
    return f"{prefix}/{when:%Y/%m/%d}/{batch_id}{suffix}"


@dataclass(frozen=True)
class Candidate:
    """What the chain rule needs to know of one legacy manifest."""

    key: str
    batch_id: str
    sequence: int
    previous_batch_id: str | None


@dataclass(frozen=True)
class Chain:
    accepted: list[Candidate]  # sequence 1, 2, 3 ... in order
    ignored: list[tuple[Candidate, str]]  # with the reason each was passed over


def select_chain(candidates: Sequence[Candidate]) -> Chain:
    """The committed history of a legacy lake, which may hold several batches of one sequence.

    Sequence ``n`` is held by the batch with the smallest batch id among those of sequence ``n``
    that follow the batch holding ``n - 1`` (a manifest with no ``previous_batch_id``, as
    processed manifests have, follows whatever holds ``n - 1``). The smallest batch id is the
    batch a transform that saw both would have taken first. Every other manifest is ignored,
    together with anything built on it; since the ignored batches' rows never reached the
    accepted state, the next extract captures them again.
    """
    by_sequence: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        by_sequence.setdefault(candidate.sequence, []).append(candidate)
    accepted: list[Candidate] = []
    ignored: list[tuple[Candidate, str]] = []
    sequence = 1
    while sequence in by_sequence:
        before = accepted[-1].batch_id if accepted else None
        group = sorted(by_sequence.pop(sequence), key=lambda c: c.batch_id)
        follows = [c for c in group if c.previous_batch_id in (None, before)]
        if not follows:
            by_sequence[sequence] = group
            break
        winner = follows[0]
        accepted.append(winner)
        for other in group:
            if other is not winner:
                ignored.append((other, f"sequence {sequence} is held by batch {winner.batch_id}"))
        sequence += 1
    for rest in by_sequence.values():
        for other in rest:
            held = f"batch {accepted[-1].batch_id}" if accepted else "no batch"
            ignored.append(
                (other, f"it does not follow the committed history, which ends at {held}")
            )
    return Chain(accepted, ignored)
