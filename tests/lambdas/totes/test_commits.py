"""The one-winner commit and the reading of a lake's history, on a directory and on S3 (moto)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import pytest

from totes.batches import MANIFEST_PREFIX, manifest_key, new_batch_id
from totes.commits import commit, committed_after, newest
from totes.errors import CommitConflictError, LakeError
from totes.lake import Lake, Payload, put_json

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["s3", "local"])
def lake(request: pytest.FixtureRequest) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


def _document(sequence: int, previous: str | None = None, minute: int = 0) -> dict[str, Any]:
    batch_id = new_batch_id(T0 + timedelta(minutes=20 * sequence + minute))
    return {"batch_id": batch_id, "sequence": sequence, "previous_batch_id": previous}


def _commit_history(lake: Lake, length: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for sequence in range(1, length + 1):
        documents.append(_document(sequence, documents[-1]["batch_id"] if documents else None))
        commit(lake, documents[-1], kind="ingestion")
    return documents


class CountingLake:
    """A lake that counts object reads, to show what a reader touches."""

    def __init__(self, inner: Lake) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.gets: list[str] = []

    def put(self, key: str, data: Payload) -> None:
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        return self.inner.get(key)

    def get_into(self, key: str, sink: BinaryIO) -> None:
        self.gets.append(key)
        self.inner.get_into(key, sink)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Any:
        return self.inner.list(prefix, start_after, page_size)


def test_history_reads_only_what_it_returns(lake: Lake) -> None:
    documents = _commit_history(lake, 6)
    counting = CountingLake(lake)
    latest = newest(counting)
    assert latest is not None
    assert (latest.key, latest.batch_id) == (manifest_key(6), documents[-1]["batch_id"])
    assert counting.gets == [manifest_key(6)]
    counting.gets.clear()
    after = committed_after(counting, 4)
    assert [b.sequence for b in after] == [5, 6]
    assert sorted(counting.gets) == sorted([manifest_key(5), manifest_key(6)])
    assert [b.batch_id for b in committed_after(lake, 0)] == [d["batch_id"] for d in documents]
    assert committed_after(lake, 6) == []


def test_only_one_of_two_racing_commits_wins_a_sequence(lake: Lake) -> None:
    first = _commit_history(lake, 1)[0]
    rivals = [_document(2, first["batch_id"], minute=m) for m in (1, 2)]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def race(document: dict[str, Any]) -> None:
        barrier.wait()
        try:
            commit(lake, document, kind="ingestion")
            outcomes[document["batch_id"]] = "committed"
        except CommitConflictError as conflict:
            outcomes[document["batch_id"]] = str(conflict)

    threads = [threading.Thread(target=race, args=(d,)) for d in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [b for b, outcome in outcomes.items() if outcome == "committed"]
    assert len(winners) == 1
    (loser_message,) = [o for o in outcomes.values() if o != "committed"]
    assert f"sequence 2 was committed first by batch {winners[0]}" in loser_message
    assert "nothing of this batch is visible" in loser_message
    latest = newest(lake)
    assert latest is not None
    assert latest.batch_id == winners[0]
    assert [b.sequence for b in committed_after(lake, 0)] == [1, 2]


def _legacy_key(document: dict[str, Any]) -> str:
    stamp = int(datetime.strptime(document["batch_id"][:18], "%Y%m%dT%H%M%S%f").timestamp())
    return f"{MANIFEST_PREFIX}{9_999_999_999_999 - stamp * 1000:013d}-{document['batch_id']}.json"


def _wedged_legacy_lake(lake: Lake) -> dict[str, dict[str, Any]]:
    """Time-keyed manifests as the race of two old-style extracts left them: two batches hold
    sequence 2, and a third batch was built on the one the chain rule passes over."""
    one = _document(1)
    rival_a = _document(2, one["batch_id"], minute=1)
    rival_b = _document(2, one["batch_id"], minute=2)
    on_b = _document(3, rival_b["batch_id"], minute=3)
    batches = {"one": one, "a": rival_a, "b": rival_b, "on_b": on_b}
    for document in batches.values():
        put_json(lake, _legacy_key(document), document)
    return batches


def test_a_wedged_legacy_lake_is_read_by_the_chain_rule(lake: Lake) -> None:
    batches = _wedged_legacy_lake(lake)
    latest = newest(lake)
    assert latest is not None
    assert latest.batch_id == batches["a"]["batch_id"]  # the smaller batch id holds sequence 2
    assert [b.batch_id for b in committed_after(lake, 0)] == [
        batches["one"]["batch_id"],
        batches["a"]["batch_id"],
    ]
    # The next commit continues the accepted history under a sequence key, and readers see the
    # legacy part and the new part as one history.
    following = _document(3, batches["a"]["batch_id"], minute=4)
    assert commit(lake, following, kind="ingestion") == manifest_key(3)
    latest = newest(lake)
    assert latest is not None
    assert latest.batch_id == following["batch_id"]
    assert [b.sequence for b in committed_after(lake, 1)] == [2, 3]
    assert committed_after(lake, 1)[0].batch_id == batches["a"]["batch_id"]


def test_a_gap_in_the_history_is_an_error_naming_the_missing_sequence(lake: Lake) -> None:
    put_json(lake, manifest_key(2), _document(2))
    with pytest.raises(LakeError, match="no batch of sequence 1"):
        committed_after(lake, 0)


def test_a_manifest_holding_another_sequence_than_its_key_is_refused(lake: Lake) -> None:
    put_json(lake, manifest_key(1), _document(7))
    with pytest.raises(LakeError, match="holds sequence 7, not 1"):
        newest(lake)
