from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from totes.errors import LakeError, ObjectExistsError
from totes.lake import Lake, get_json, parquet_bytes, put_json, read_parquet


@pytest.fixture(params=["s3", "local"])
def lake(request: pytest.FixtureRequest) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


def test_objects_are_write_once(lake: Lake) -> None:
    lake.put("t/2024/01/01/a.json", b"first")
    with pytest.raises(LakeError, match="write-once"):
        lake.put("t/2024/01/01/a.json", b"second")
    assert lake.get("t/2024/01/01/a.json") == b"first"


def test_listing_is_ordered_and_resumable(lake: Lake) -> None:
    for key in ("m/003.json", "m/001.json", "m/002.json", "other/x.json"):
        lake.put(key, b"{}")
    assert list(lake.list("m/")) == ["m/001.json", "m/002.json", "m/003.json"]
    assert list(lake.list("m/", start_after="m/001.json")) == ["m/002.json", "m/003.json"]
    assert lake.exists("m/002.json")
    assert not lake.exists("m/004.json")


def test_missing_object_is_a_lake_error(lake: Lake) -> None:
    with pytest.raises(LakeError, match="nope"):
        lake.get("nope")


def test_parquet_and_json_round_trip(lake: Lake) -> None:
    table = pa.table({"id": pa.array([1, None], pa.int64()), "name": ["a", None]})
    lake.put("p.parquet", parquet_bytes(table))
    assert read_parquet(lake, "p.parquet").equals(table)
    put_json(lake, "doc.json", {"a": [1, 2]})
    assert get_json(lake, "doc.json") == {"a": [1, 2]}


def test_of_racing_writers_of_one_key_exactly_one_wins(lake: Lake) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    won: list[bytes] = []
    refused: list[str] = []

    def write(body: bytes) -> None:
        barrier.wait()
        try:
            lake.put("m/race.json", body)
            won.append(body)
        except ObjectExistsError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=write, args=(f"w{i}".encode(),)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert len(refused) == writers - 1
    assert lake.get("m/race.json") == won[0]
    assert list(lake.list("m/")) == ["m/race.json"]  # no temporary file left behind
