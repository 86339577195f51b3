"""Read the two real snapshot formats into raw Arrow tables, one per source table.

* a plain pg_dump (``*.sql`` or ``*.sql.gz``): only its ``COPY ... FROM stdin`` blocks matter; the
  DDL is of a loose local copy and is ignored. Blocks are parsed with pyarrow's CSV reader (tab
  separated, ``\\N`` for NULL), every value as text, so the strict conversion sees exactly what the
  dump holds. A dump is read whole: the real ones are a few megabytes.
* a folder of ``<table>.parquet`` files, read in record batches.

Pure logic: no database here. Types are made strict later by :mod:`totes_dev.source.convert`.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from totes.errors import reason
from totes.tables import LOAD_ORDER, source_table
from totes_dev.errors import SnapshotLoadError
from totes_dev.source.convert import RowLocator

PARQUET_BATCH_ROWS = 65_536

_COPY_HEADER = re.compile(
    rb"^COPY (?:(?:public|\"public\")\.)?\"?(\w+)\"? \(([^)]*)\) FROM stdin;\n", re.MULTILINE
)
_COPY_ESCAPE = re.compile(r"\\(.)")
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class RawChunk:
    """Rows of one table as found in a file; ``first_row`` is the index of its first row there."""

    table: str
    rows: pa.Table
    origin: str
    locate: RowLocator
    first_row: int = 0


def snapshot_root(env: Mapping[str, str] | None = None) -> Path:
    """Where the real totesys snapshots live (test fixtures, never copied into the project):
    ``TOTES_SNAPSHOT_ROOT``, else ``shared/totesys_real_data`` beside the project's folder."""
    env = os.environ if env is None else env
    default = Path(__file__).resolve().parents[4] / "shared" / "totesys_real_data"
    return Path(env.get("TOTES_SNAPSHOT_ROOT", "").strip() or default)


def snapshot_path(root: Path, name: str) -> Path:
    """The folder of a named real snapshot: ``"2024-11-15"`` or ``"snapshot-2024-11-15"``."""
    folder = name if name.startswith("snapshot-") else f"snapshot-{name}"
    path = root / folder
    if not path.is_dir():
        raise SnapshotLoadError(f"no snapshot {folder} under {root}")
    return path


def _dump_file(path: Path) -> Path | None:
    if path.is_file() and path.name.endswith((".sql", ".sql.gz")):
        return path
    if path.is_dir():
        dumps = sorted([*path.glob("*.sql.gz"), *path.glob("*.sql")])
        if len(dumps) > 1:
            raise SnapshotLoadError(f"{path} holds more than one dump: {[d.name for d in dumps]}")
        return dumps[0] if dumps else None
    return None


def read_snapshot(path: Path) -> dict[str, Iterable[RawChunk]]:
    """All 11 tables of the snapshot at ``path`` (a dump file, or a folder of either format)."""
    if not path.exists():
        raise SnapshotLoadError(f"snapshot {path} does not exist")
    dump = _dump_file(path)
    if dump is not None:
        return _require_all(read_dump(dump), dump.name)
    if path.is_dir() and any(path.glob("*.parquet")):
        return _require_all(read_parquet_folder(path), path.name)
    raise SnapshotLoadError(f"{path} is neither a pg_dump nor a folder of Parquet files")


def _require_all(
    chunks: dict[str, Iterable[RawChunk]], origin: str
) -> dict[str, Iterable[RawChunk]]:
    missing = [name for name in LOAD_ORDER if name not in chunks]
    if missing:
        raise SnapshotLoadError(f"{origin} lacks tables {missing}")
    return chunks


def _unescape(value: str) -> str:
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), value)


def _unescape_column(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Undo COPY text escapes; only the rare values holding a backslash are touched."""
    flags = pc.fill_null(pc.match_substring(values, "\\"), False)
    if not pc.any(flags).as_py():
        return values
    fixed = [None if v is None else _unescape(v) for v in values.filter(flags).to_pylist()]
    positions = pc.indices_nonzero(flags).to_numpy()
    out = values.to_pylist()
    for position, value in zip(positions, fixed, strict=True):
        out[int(position)] = value
    return pa.chunked_array([pa.array(out, pa.string())])


def _bad_line(block: bytes, columns: int) -> int:
    """Error path only: index of the first line whose field count is wrong."""
    for index, line in enumerate(block.split(b"\n")):
        if line.count(b"\t") != columns - 1:
            return index
    return 0


def _parse_copy_block(block: bytes, columns: list[str]) -> pa.Table:
    if not block:
        return pa.table({name: pa.array([], pa.string()) for name in columns})
    return pcsv.read_csv(
        io.BytesIO(block),
        read_options=pcsv.ReadOptions(column_names=columns, block_size=1 << 24),
        parse_options=pcsv.ParseOptions(
            delimiter="\t", quote_char=False, double_quote=False, escape_char=False
        ),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            null_values=["\\N"],
            strings_can_be_null=True,
        ),
    )


def read_dump(path: Path) -> dict[str, Iterable[RawChunk]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data: bytes = handle.read()
    except (OSError, EOFError) as exc:
        raise SnapshotLoadError(f"{path.name} cannot be read: {exc}") from None
    chunks: dict[str, Iterable[RawChunk]] = {}
    for header in _COPY_HEADER.finditer(data):
        name = header.group(1).decode()
        try:
            spec = source_table(name)
        except KeyError:
            raise SnapshotLoadError(
                f"{path.name} holds a table {name!r} that is not in totesys"
            ) from None
        columns = [c.strip().strip('"') for c in header.group(2).decode().split(",")]
        start = header.end()
        end = data.find(b"\n\\.\n", start - 1)
        if end < 0:
            raise SnapshotLoadError(f"{path.name}: COPY block of {name} is not terminated")
        block = data[start : max(start, end)]
        first_line = data.count(b"\n", 0, start) + 1

        def locate(index: int, first_line: int = first_line) -> str:
            return f"row {index + 1} (line {first_line + index})"

        try:
            rows = _parse_copy_block(block, columns)
        except pa.ArrowInvalid as exc:
            index = _bad_line(block, len(columns))
            raise SnapshotLoadError(
                f"{path.name}: {locate(index)}: {reason(exc)}", table=name
            ) from None
        rows = pa.table({c: _unescape_column(rows.column(c)) for c in rows.column_names})
        if name in chunks:
            raise SnapshotLoadError(f"{path.name} holds two COPY blocks for {name}", table=name)
        chunks[spec.name] = [RawChunk(spec.name, rows, path.name, locate)]
    return chunks


def _parquet_chunks(path: Path, table: str) -> Iterator[RawChunk]:
    origin = path.name

    def locate(index: int) -> str:
        return f"row {index + 1}"

    try:
        reader = pq.ParquetFile(path)
        first = 0
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield RawChunk(table, pa.Table.from_batches([batch]), origin, locate, first)
            first += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise SnapshotLoadError(f"{origin} cannot be read: {exc}", table=table) from None


def read_parquet_folder(path: Path) -> dict[str, Iterable[RawChunk]]:
    chunks: dict[str, Iterable[RawChunk]] = {}
    for name in LOAD_ORDER:
        file = path / f"{name}.parquet"
        if file.is_file():
            chunks[name] = _parquet_chunks(file, name)
    return chunks
