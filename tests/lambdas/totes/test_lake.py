from __future__ import annotations

import errno
import io
import threading
from pathlib import Path
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pytest

from totes.errors import LakeError, ObjectExistsError
from totes.lake import (
    STREAM_CHUNK_BYTES,
    BackgroundPuts,
    Lake,
    Payload,
    SameBytesPuts,
    get_json,
    holds,
    parquet_bytes,
    put_json,
    read_parquet,
)


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
    with pytest.raises(LakeError, match="nope"):
        lake.get_into("nope", io.BytesIO())


def test_an_object_streams_into_a_file_in_chunks_whole_and_unchanged(
    lake: Lake, tmp_path: Path
) -> None:
    # Over two read chunks and not a multiple of one, so every chunk boundary is crossed.
    data = bytes(range(256)) * ((2 * STREAM_CHUNK_BYTES) // 256 + 3)
    lake.put("big/object.parquet", data)
    spooled = tmp_path / "object.parquet"
    with spooled.open("wb") as sink:
        lake.get_into("big/object.parquet", sink)
    assert spooled.read_bytes() == data


def test_a_file_is_written_whole_and_stays_write_once(lake: Lake, tmp_path: Path) -> None:
    data = bytes(range(256)) * ((2 * STREAM_CHUNK_BYTES) // 256 + 3)
    built = tmp_path / "built.parquet"
    built.write_bytes(data)
    lake.put("big/from-file.parquet", built)
    assert lake.get("big/from-file.parquet") == data
    other = tmp_path / "other.parquet"
    other.write_bytes(b"other")
    with pytest.raises(ObjectExistsError, match="write-once"):
        lake.put("big/from-file.parquet", other)
    assert lake.get("big/from-file.parquet") == data
    assert list(lake.list("big/")) == ["big/from-file.parquet"]  # no temporary file left


def test_holds_compares_content_not_identity(lake: Lake, tmp_path: Path) -> None:
    lake.put("o.bin", b"content")
    same, changed = tmp_path / "same", tmp_path / "changed"
    same.write_bytes(b"content")
    changed.write_bytes(b"content!")
    assert holds(lake, "o.bin", same)
    assert holds(lake, "o.bin", b"content")
    assert not holds(lake, "o.bin", changed)
    assert not holds(lake, "o.bin", b"Content")


def test_same_bytes_puts_take_a_repeat_and_refuse_other_content(lake: Lake, tmp_path: Path) -> None:
    repeatable = SameBytesPuts(lake)
    first = tmp_path / "first"
    first.write_bytes(b"batch object")
    repeatable.put("t/a.parquet", first)
    repeatable.put("t/a.parquet", b"batch object")  # a retried step writing the same again
    first.write_bytes(b"other object")
    with pytest.raises(ObjectExistsError):
        repeatable.put("t/a.parquet", first)
    assert lake.get("t/a.parquet") == b"batch object"


class _FullDisk(io.RawIOBase):
    """A sink whose disk is full, as a spool file on a full /tmp is."""

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_sink_that_cannot_be_written_is_not_blamed_on_the_lake(lake: Lake) -> None:
    lake.put("big/object.parquet", b"x" * 100)
    with pytest.raises(OSError, match="No space left") as raised:
        lake.get_into("big/object.parquet", cast(BinaryIO, _FullDisk()))
    assert not isinstance(raised.value, LakeError)


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


class _Gated:
    """A lake whose writes wait for a gate, counting how many wait at once; one key fails."""

    def __init__(self, inner: Lake, failing: str | None = None) -> None:
        self.inner, self.uri, self.failing = inner, inner.uri, failing
        self.gate = threading.Event()
        self.waiting = self.most_waiting = 0
        self.lock = threading.Lock()

    def put(self, key: str, data: Payload) -> None:
        with self.lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        self.gate.wait(5)
        with self.lock:
            self.waiting -= 1
        if key == self.failing:
            raise LakeError(f"injected failure writing {key}")
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_into(self, key: str, sink: BinaryIO) -> None:
        self.inner.get_into(key, sink)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Any:
        return self.inner.list(prefix, start_after, page_size)


def test_background_puts_are_all_written_by_flush_and_bounded(lake: Lake) -> None:
    gated = _Gated(lake)
    writes = BackgroundPuts(gated, workers=4, pending=2)
    threading.Timer(0.3, gated.gate.set).start()
    for n in range(6):
        writes.put(f"k/{n}", b"x")  # the third waits for a free slot until the gate opens
    writes.flush()
    writes.close()
    assert list(lake.list("k/")) == [f"k/{n}" for n in range(6)]
    assert gated.most_waiting == 2


def test_a_failed_background_put_stops_the_next_put_and_the_flush(lake: Lake) -> None:
    gated = _Gated(lake, failing="k/0")
    gated.gate.set()
    writes = BackgroundPuts(gated)
    writes.put("k/0", b"x")
    with pytest.raises(LakeError, match="k/0"):
        writes.flush()
    writes = BackgroundPuts(gated)
    writes.put("k/0", b"x")
    writes._futures[0].exception()  # the write has failed by now
    with pytest.raises(LakeError, match="k/0"):
        writes.put("k/1", b"y")
    writes.close()
    assert not lake.exists("k/1")
