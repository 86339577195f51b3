"""The sort-based key checks answer exactly what Arrow's hash kernels answer, and key-ordered
streams merge into what replacing rows by key in one table gives."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from totes.keys import (
    AscendingKeys,
    KeySet,
    ascending,
    is_known,
    merged_by_key,
    repeats_a_key,
)


def _random_keys(rng: np.random.Generator, n: int, *, high: int, nulls: bool) -> pa.Array:
    values = rng.integers(1, high, n)
    mask = rng.random(n) < 0.1 if nulls else None
    return pa.array(values, pa.int64(), mask=mask)


@pytest.mark.parametrize("seed", range(40))
def test_repeats_a_key_agrees_with_count_distinct(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 50))
    keys = _random_keys(rng, n, high=int(rng.integers(2, 200)), nulls=seed % 2 == 0)
    if seed % 3 == 0:
        keys = pc.drop_null(keys).sort() if seed % 2 else keys  # sorted inputs take the fast path
    chunked = pa.chunked_array([keys[: n // 2], keys[n // 2 :]], pa.int64())
    expected = pc.count_distinct(keys).as_py() != len(keys) - keys.null_count
    assert repeats_a_key(keys) is expected
    assert repeats_a_key(chunked) is expected


def test_repeats_a_key_ignores_nulls_and_finds_a_repeat_out_of_order() -> None:
    assert repeats_a_key(pa.array([1, None, None, 2], pa.int64())) is False
    assert repeats_a_key(pa.array([3, 1, 2, 1], pa.int64())) is True
    assert repeats_a_key(pa.array([1, 2, 2, 3], pa.int64())) is True
    assert repeats_a_key(pa.array([], pa.int64())) is False


@pytest.mark.parametrize("seed", range(40))
def test_is_known_agrees_with_is_in(seed: int) -> None:
    rng = np.random.default_rng(seed)
    high = int(rng.integers(2, 100))
    ids = _random_keys(rng, int(rng.integers(0, 60)), high=high, nulls=seed % 2 == 0)
    known = pc.unique(
        pc.drop_null(_random_keys(rng, int(rng.integers(0, 40)), high=high, nulls=False))
    )
    sorted_known = known.sort()
    expected = pc.is_in(ids, value_set=known)
    assert is_known(ids, sorted_known) == expected
    assert is_known(ids, known) == expected  # an unsorted set is sorted first
    assert (
        is_known(pa.chunked_array([ids], pa.int64()), pa.chunked_array([sorted_known])) == expected
    )


def test_is_known_of_nothing_known_and_of_null_ids() -> None:
    assert is_known(pa.array([1, None], pa.int64()), pa.array([], pa.int64())).to_pylist() == [
        False,
        False,
    ]
    assert is_known(
        pa.array([None, 5, 9], pa.int64()), pa.array([5, 7], pa.int64())
    ).to_pylist() == [
        False,
        True,
        False,
    ]


@pytest.mark.parametrize("seed", range(40))
def test_ascending_keys_hold_only_for_keys_in_strict_order_across_slices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    values = np.cumsum(rng.integers(1, 4, n))  # strictly ascending
    if seed % 3 == 0 and n > 1:
        at = int(rng.integers(1, n))
        values[at] = values[at - 1] - int(rng.integers(0, 2))  # a repeat or a step back
    keys = pa.array(values, pa.int64(), mask=rng.random(n) < 0.1 if seed % 2 else None)
    cuts = sorted(int(c) for c in rng.integers(0, n + 1, 3))
    order = AscendingKeys()
    verdicts = [order.follow(keys[a:b]) for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    present = pc.drop_null(keys).to_numpy()
    expected = bool(np.all(present[1:] > present[:-1]))
    assert verdicts[-1] is expected
    assert verdicts == sorted(verdicts, reverse=True)  # once out of order, it stays so
    if verdicts[-1]:
        assert not repeats_a_key(keys)


def test_ascending_means_no_null_and_strictly_increasing_across_chunks() -> None:
    def chunked(*parts: list[int | None]) -> pa.ChunkedArray:
        return pa.chunked_array([pa.array(p, pa.int64()) for p in parts], pa.int64())

    assert ascending(chunked([1, 2], [], [5, 9]))
    assert ascending(pa.array([], pa.int64()))
    assert not ascending(chunked([1, 2], [2, 3]))  # repeated across chunks
    assert not ascending(chunked([1, 5], [4]))
    assert not ascending(chunked([1, None, 3]))  # a null key is no order


@pytest.mark.parametrize("seed", range(40))
def test_a_key_set_contains_exactly_its_keys_and_unions_agree_with_sets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    high = int(rng.integers(2, 300))
    # Keys in long runs, as sequences give them, with random gaps and repeats.
    parts = [
        _random_keys(rng, int(rng.integers(0, 40)), high=high, nulls=seed % 2 == 0)
        for _ in range(3)
    ]
    runs = pa.array(np.arange(int(rng.integers(0, high)), high), pa.int64())
    parts.append(runs.filter(pa.array(rng.random(len(runs)) < 0.9)))
    ids = _random_keys(rng, 200, high=high + 5, nulls=True)
    sets = [KeySet.of(part) for part in parts]
    for part, key_set in zip(parts, sets, strict=True):
        assert key_set.contains(ids) == pc.is_in(ids, value_set=pc.drop_null(part))
        assert len(key_set) == len(pc.unique(pc.drop_null(part)))
    every = pc.drop_null(pa.concat_arrays(parts))
    union = KeySet.union(*sets, None)
    assert union.contains(ids) == pc.is_in(ids, value_set=every)
    assert len(union) == len(pc.unique(every))
    assert union.contains(pa.chunked_array([ids[:50], ids[50:]])) == union.contains(ids)
    assert KeySet.union().contains(ids).to_pylist() == [False] * len(ids)


def test_a_key_set_of_consecutive_keys_is_one_run() -> None:
    assert KeySet.of(pa.array(np.arange(1, 1_000_001), pa.int64())).runs == 1
    split = KeySet.union(KeySet.of(pa.array([4, 5, 6])), KeySet.of(pa.array([1, 2, 3, 9])))
    assert (split.runs, len(split)) == (2, 7)


def _table(keys: list[int], tag: str) -> pa.Table:
    return pa.table(
        {"id": pa.array(keys, pa.int64()), "tag": pa.array([tag] * len(keys), pa.string())}
    )


def _cut(rng: np.random.Generator, table: pa.Table) -> list[pa.Table]:
    cuts = sorted(int(c) for c in rng.integers(0, table.num_rows + 1, int(rng.integers(0, 4))))
    bounds = [0, *cuts, table.num_rows]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("seed", range(60))
def test_merged_by_key_replaces_old_rows_by_key_in_key_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    old_keys = sorted(set(rng.integers(0, 80, int(rng.integers(0, 50))).tolist()))
    new_keys = sorted(set(rng.integers(0, 80, int(rng.integers(0, 30))).tolist()))
    old, new = _table(old_keys, "old"), _table(new_keys, "new")
    merged = list(merged_by_key(_cut(rng, old), _cut(rng, new), "id"))
    expected = {k: "old" for k in old_keys} | {k: "new" for k in new_keys}
    rows = pa.concat_tables([_table([], "x"), *merged])
    assert rows.column("id").to_pylist() == sorted(expected)
    assert rows.column("tag").to_pylist() == [expected[k] for k in sorted(expected)]
    assert all(piece.num_rows for piece in merged)  # no empty pieces to write
