from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from totes.batches import (
    Candidate,
    batch_time,
    dated_key,
    is_legacy_manifest,
    manifest_key,
    new_batch_id,
    select_chain,
    sequence_of_manifest,
)


def test_batch_ids_sort_by_time_and_keep_milliseconds() -> None:
    t0 = datetime(2026, 11, 25, 23, 15, 0, 123456, tzinfo=UTC)
    first, second = new_batch_id(t0), new_batch_id(t0 + timedelta(milliseconds=1))
    assert first.startswith("20261125T231500123Z-")
    assert first < second
    assert batch_time(first) == t0.replace(microsecond=123000)
    assert dated_key("sales_order", first) == f"sales_order/2026/11/25/{first}.parquet"


def test_manifest_keys_come_from_the_sequence_and_list_newest_first() -> None:
    keys = [manifest_key(n) for n in (1, 2, 10, 11, 999)]
    assert keys == sorted(keys, reverse=True)
    assert manifest_key(1) == "_manifests/0999999999998.json"
    assert [sequence_of_manifest(k) for k in keys] == [1, 2, 10, 11, 999]
    assert sequence_of_manifest("_manifests/notes.json") is None
    with pytest.raises(ValueError, match="out of range"):
        manifest_key(0)


def test_time_keyed_manifests_sort_after_every_sequence_key() -> None:
    legacy = f"_manifests/8235873499876-{new_batch_id(datetime(2026, 1, 1, tzinfo=UTC))}.json"
    assert is_legacy_manifest(legacy)
    assert sequence_of_manifest(legacy) is None
    assert not is_legacy_manifest(manifest_key(5))
    assert max(manifest_key(n) for n in (1, 10**6, 10**11)) < legacy


def _candidate(batch: str, sequence: int, previous: str | None) -> Candidate:
    return Candidate(f"_manifests/{batch}", batch, sequence, previous)


def test_the_chain_takes_the_smallest_batch_id_per_sequence_and_drops_what_follows_a_loser() -> (
    None
):
    one = _candidate("b1", 1, None)
    winner, loser = _candidate("b2a", 2, "b1"), _candidate("b2b", 2, "b1")
    on_loser = _candidate("b3", 3, "b2b")  # the next extract built on the losing batch
    chain = select_chain([on_loser, loser, winner, one])
    assert chain.accepted == [one, winner]
    ignored = {c.batch_id: reason for c, reason in chain.ignored}
    assert ignored.keys() == {"b2b", "b3"}
    assert "held by batch b2a" in ignored["b2b"]
    assert "ends at batch b2a" in ignored["b3"]


def test_manifests_without_a_predecessor_link_chain_by_sequence() -> None:
    batches = [_candidate(f"b{n}", n, None) for n in (3, 1, 2)]
    assert [c.batch_id for c in select_chain(batches).accepted] == ["b1", "b2", "b3"]


def test_a_history_that_does_not_start_at_one_accepts_nothing() -> None:
    chain = select_chain([_candidate("b2", 2, "b1")])
    assert chain.accepted == []
    assert [c.batch_id for c, _ in chain.ignored] == ["b2"]
