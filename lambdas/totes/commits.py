"""Committed batches of a lake (ingestion or processed): reading the history, committing the next.

A batch is committed by writing its manifest, last, at the key its sequence determines (see
:mod:`totes.batches`). The write is conditional, so of two writers racing for one sequence exactly
one commits; the other gets :class:`CommitConflictError` and leaves only objects that no manifest
names, which every reader ignores.

Readers see the lake's history through :func:`newest` and :func:`committed_after`. Both cost a
listing that stops at what they need, however old the lake is. A lake written before sequence
keys is read through the chain rule of :func:`totes.batches.select_chain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from totes.batches import (
    MANIFEST_PREFIX,
    Candidate,
    is_legacy_manifest,
    manifest_key,
    select_chain,
    sequence_of_manifest,
)
from totes.errors import CommitConflictError, LakeError, ObjectExistsError
from totes.lake import Lake, get_json, put_json
from totes.observability import log


@dataclass(frozen=True)
class Committed:
    """One committed batch: its manifest key and document."""

    key: str
    document: dict[str, Any]

    @property
    def sequence(self) -> int:
        return int(self.document["sequence"])

    @property
    def batch_id(self) -> str:
        return str(self.document["batch_id"])


def _read(lake: Lake, key: str, sequence: int | None = None) -> Committed:
    document = get_json(lake, key)
    found = document.get("sequence")
    if not isinstance(found, int) or not isinstance(document.get("batch_id"), str):
        raise LakeError(f"manifest {key} has no batch id or sequence")
    if sequence is not None and found != sequence:
        raise LakeError(f"manifest {key} holds sequence {found}, not {sequence}")
    return Committed(key, document)


def _legacy_history(lake: Lake) -> list[Committed]:
    """The accepted history of time-keyed manifests (lakes written before sequence keys)."""
    manifests = {
        key: _read(lake, key) for key in lake.list(MANIFEST_PREFIX) if is_legacy_manifest(key)
    }
    chain = select_chain(
        [
            Candidate(
                key,
                m.batch_id,
                m.sequence,
                m.document.get("previous_batch_id"),
            )
            for key, m in manifests.items()
        ]
    )
    for candidate, reason in chain.ignored:
        log(
            "lake.manifest_ignored",
            level="warning",
            lake=lake.uri,
            manifest_key=candidate.key,
            batch_id=candidate.batch_id,
            sequence=candidate.sequence,
            reason=reason,
        )
    return [manifests[c.key] for c in chain.accepted]


def newest(lake: Lake) -> Committed | None:
    """The latest committed batch, or None in an empty lake."""
    for key in lake.list(MANIFEST_PREFIX, page_size=1):
        sequence = sequence_of_manifest(key)
        if sequence is not None:
            return _read(lake, key, sequence)
        break
    history = _legacy_history(lake)
    return history[-1] if history else None


def committed_after(lake: Lake, sequence: int) -> list[Committed]:
    """Every committed batch with a sequence above ``sequence``, oldest first."""
    newer: list[Committed] = []
    for key in lake.list(MANIFEST_PREFIX):
        found = sequence_of_manifest(key)
        if found is None:
            if is_legacy_manifest(key):
                older = [c for c in _legacy_history(lake) if c.sequence > sequence]
                newer.extend(reversed(older))
                break
            continue
        if found <= sequence:
            break
        newer.append(_read(lake, key, found))
    newer.reverse()
    expected = sequence + 1
    for batch in newer:
        if batch.sequence != expected:
            raise LakeError(
                f"the lake's history has no batch of sequence {expected} "
                f"(next is {batch.key}, sequence {batch.sequence})"
            )
        expected += 1
    return newer


def commit(lake: Lake, document: dict[str, Any], *, kind: str) -> str:
    """Make a batch visible by writing its manifest at its sequence's key; returns the key.

    Raises :class:`CommitConflictError` when another batch committed that sequence first."""
    sequence = int(document["sequence"])
    key = manifest_key(sequence)
    try:
        put_json(lake, key, document)
    except ObjectExistsError:
        try:
            holder = _read(lake, key).batch_id
        except LakeError:
            holder = "another batch"
        raise CommitConflictError(
            f"{kind} batch {document['batch_id']} was not committed: sequence {sequence} was "
            f"committed first by batch {holder}; nothing of this batch is visible and the next "
            "run takes up its work",
            key=key,
        ) from None
    return key
