"""The local spool: Parquet files written a row group at a time, objects copied down, and a full
disk as an error that names the stage, the table and the fix."""

from __future__ import annotations

import errno
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from totes.errors import DiskFullError
from totes.lake import LocalLake
from totes.spool import RowGroups, on_local_disk, spooled

SCHEMA = pa.schema([("pk", pa.int64())])


def _keys(keys: list[int]) -> pa.Table:
    return pa.table({"pk": pa.array(keys, pa.int64())})


def test_row_groups_gather_small_parts_and_never_create_an_empty_file(tmp_path: Path) -> None:
    out = RowGroups(tmp_path / "state.parquet", SCHEMA, rows=3)
    for keys in ([1], [2], [], [3, 4], [5]):
        out.add(_keys(keys))
    out.close()
    metadata = pq.ParquetFile(out.path).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [4, 1]
    assert pq.read_table(out.path).column("pk").to_pylist() == [1, 2, 3, 4, 5]
    assert out.rows == 5

    empty = RowGroups(tmp_path / "none.parquet", SCHEMA, rows=3)
    empty.add(_keys([]))
    empty.close()
    assert not empty.path.exists()


def test_spooled_copies_an_object_to_a_local_file(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    lake.put("a/b.bin", b"\x00bytes" * 1000)
    path = spooled(lake, "a/b.bin", tmp_path / "copy.bin")
    assert path.read_bytes() == b"\x00bytes" * 1000


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_a_full_disk_names_the_step_table_key_and_the_setting_that_sizes_it(code: int) -> None:
    with (
        pytest.raises(DiskFullError) as raised,
        on_local_disk("load", table="fact_payment", key="k"),
    ):
        raise OSError(code, "No space left on device")
    message = str(raised.value)
    assert message.startswith("[load table=fact_payment key=k] the local disk is too small")
    assert "No space left on device" in message  # the underlying cause is kept
    assert "lambda_ephemeral_storage_mb" in message
    assert raised.value.step == "load"


def test_other_operating_system_errors_pass_through_unchanged() -> None:
    with pytest.raises(PermissionError), on_local_disk("extract", table="payment"):
        raise PermissionError(errno.EACCES, "Permission denied")
