"""Write-once object storage for the data lake: an S3 bucket (prefix) or a local directory.

Immutability is part of the product: a key is written at most once. On S3 that is enforced by
the conditional ``PutObject`` (``If-None-Match: *``); on a directory by exclusive file creation.
A second write of the same key raises :class:`LakeError` instead of replacing data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from totes.errors import LakeError, ObjectExistsError, reason
from totes.settings import LakeLocation

if TYPE_CHECKING:  # pyarrow is imported where Parquet is used: the lock function needs none
    import pyarrow as pa


# Bytes per read of a streamed object: what one read holds, not what the object weighs.
STREAM_CHUNK_BYTES = 1 << 20

# What a write stores: bytes, or the whole content of a file. A large object is written from
# the file it was built in, so that it is never held in memory whole; a path rather than an
# open file, so that a write on another thread opens its own handle and owns no one's file.
Payload = bytes | Path


class Lake(Protocol):
    uri: str

    def put(self, key: str, data: Payload) -> None: ...

    def get(self, key: str) -> bytes: ...

    def get_into(self, key: str, sink: BinaryIO) -> None:
        """Stream an object into ``sink`` (a file) without holding it whole in memory."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[str]: ...


class LocalLake:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise LakeError(f"key {key!r} escapes the lake")
        return path

    def put(self, key: str, data: Payload) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique per writer, so that racing writers (threads or processes) never share a file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)
            # link() fails when the target exists: write-once without a read-modify race.
            os.link(tmp, path)
        except FileExistsError:
            raise ObjectExistsError(
                f"object {key} already exists; lake objects are write-once"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"object {key} does not exist in {self.uri}") from None

    def get_into(self, key: str, sink: BinaryIO) -> None:
        try:
            with self._path(key).open("rb") as source:
                shutil.copyfileobj(source, sink)
        except FileNotFoundError:
            raise LakeError(f"object {key} does not exist in {self.uri}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[str]:
        base = self.root / prefix
        directory = base if prefix.endswith("/") or base.is_dir() else base.parent
        if not directory.exists():
            return
        keys = sorted(
            p.relative_to(self.root).as_posix()
            for p in directory.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        for key in keys:
            if key.startswith(prefix) and (start_after is None or key > start_after):
                yield key


class S3Lake:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self.client = client or boto3.client("s3")

    def put(self, key: str, data: Payload) -> None:
        try:
            if isinstance(data, Path):
                with data.open("rb") as body:  # one PUT streamed from disk (up to 5 GB)
                    self._put(key, body)
            else:
                self._put(key, data)
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ObjectExistsError(
                    f"object {key} already exists; lake objects are write-once"
                ) from None
            raise LakeError(f"writing {key} to {self.uri} failed: {reason(exc)}") from None
        except Exception as exc:
            raise LakeError(f"writing {key} to {self.uri} failed: {reason(exc)}") from None

    def _put(self, key: str, body: bytes | BinaryIO) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self.prefix + key, Body=body, IfNoneMatch="*"
        )

    def get(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            return bytes(body.read())
        except Exception as exc:
            raise LakeError(f"reading {key} from {self.uri} failed: {reason(exc)}") from None

    def get_into(self, key: str, sink: BinaryIO) -> None:
        writing = False  # a failed write is the sink's (a full disk), not the lake's
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            for chunk in body.iter_chunks(chunk_size=STREAM_CHUNK_BYTES):
                writing = True
                sink.write(chunk)
                writing = False
        except Exception as exc:
            if writing:
                raise
            raise LakeError(f"reading {key} from {self.uri} failed: {reason(exc)}") from None

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise LakeError(f"checking {key} in {self.uri} failed: {reason(exc)}") from None
        return True

    def list(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[str]:
        """Keys in order; ``page_size`` bounds each list call (a reader wanting one key asks 1)."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "PaginationConfig": {"PageSize": page_size},
        }
        if start_after:
            kwargs["StartAfter"] = self.prefix + start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(self.prefix) :]
        except Exception as exc:
            raise LakeError(f"listing {prefix} in {self.uri} failed: {reason(exc)}") from None


class ReadsThrough:
    """Base of a lake that changes only how writes happen: reads go straight to ``inner``."""

    inner: Lake
    uri: str

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_into(self, key: str, sink: BinaryIO) -> None:
        self.inner.get_into(key, sink)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[str]:
        return self.inner.list(prefix, start_after, page_size)


class SameBytesPuts(ReadsThrough):
    """A lake on which writing an object again with the very same bytes succeeds.

    For a step that may run twice over the same input (a retried invocation whose first try
    wrote its objects and then lost its answer): the second run writes the same keys with the
    same bytes, and only different bytes are refused, as any overwrite is."""

    def __init__(self, inner: Lake) -> None:
        self.inner = inner
        self.uri = inner.uri

    def put(self, key: str, data: Payload) -> None:
        try:
            self.inner.put(key, data)
        except ObjectExistsError:
            if not holds(self.inner, key, data):
                raise


class BackgroundPuts(ReadsThrough):
    """A lake whose writes run on worker threads while the caller goes on, until :meth:`flush`.

    For objects that stay invisible until a manifest names them: the writer flushes before it
    commits, so a failed write (raised by ``flush``, the first one) still stops the commit. At
    most ``pending`` writes wait, so the bytes held stay bounded. Reads go straight to the lake
    (nothing here reads what it has just written)."""

    def __init__(self, inner: Lake, *, workers: int = 4, pending: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.inner = inner
        self.uri = inner.uri
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lake-put")
        self._slots = threading.BoundedSemaphore(pending)
        self._futures: list[Future[None]] = []

    def put(self, key: str, data: Payload) -> None:
        self._raise_failure()  # a write already failed: stop the caller's work now
        self._slots.acquire()
        try:
            future = self._pool.submit(self.inner.put, key, data)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_failure(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def flush(self) -> None:
        """Wait for every write so far; raise the first failure."""
        for future in self._futures:
            future.exception()  # waits
        self._raise_failure()
        self._futures = []

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _Digest:
    """A write-only sink that keeps nothing but the digest of what went through it."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self.hash.update(chunk)
        return len(chunk)


def _digest(data: Payload) -> bytes:
    if isinstance(data, bytes):
        return hashlib.sha256(data).digest()
    with data.open("rb") as source:
        return hashlib.file_digest(source, "sha256").digest()


def holds(lake: Lake, key: str, data: Payload) -> bool:
    """Whether the object at ``key`` has exactly the content of ``data``, compared by digest so
    that neither side is held in memory whole."""
    stored = _Digest()
    lake.get_into(key, cast(BinaryIO, stored))
    return stored.hash.digest() == _digest(data)


def open_lake(location: LakeLocation) -> Lake:
    if location.bucket is not None:
        return S3Lake(location.bucket, location.prefix)
    assert location.local_path is not None
    try:
        location.local_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission
        raise LakeError(f"lake {location.uri} is not a usable directory: {reason(exc)}") from None
    return LocalLake(location.local_path)


# How every Parquet object is written. Dictionary encoding is off: on these tables (ids, money,
# timestamps, random hashes) zstd alone gives smaller files, and writes up to three times faster,
# than zstd over dictionary pages (measured on every generated table; docs/performance.md).
PARQUET_WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": False}


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, **PARQUET_WRITE_OPTIONS)
    return sink.getvalue()


def parquet_table(data: bytes) -> pa.Table:
    """A Parquet object's rows. ``ParquetFile`` rather than ``read_table``: the latter goes
    through pyarrow.dataset, whose import (and pandas', where installed) costs more than a
    whole run with nothing new."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(data)).read()


def read_parquet(lake: Lake, key: str) -> pa.Table:
    return parquet_table(lake.get(key))


def put_json(lake: Lake, key: str, document: dict[str, Any]) -> None:
    lake.put(key, json.dumps(document, indent=1, sort_keys=True).encode())


def get_json(lake: Lake, key: str) -> dict[str, Any]:
    try:
        value = json.loads(lake.get(key))
    except json.JSONDecodeError as exc:
        raise LakeError(f"object {key} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LakeError(f"object {key} is not a JSON object")
    return value
