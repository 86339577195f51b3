"""Zips whose bytes depend only on the files they hold (stdlib only).

A zip records each entry's modification time, permissions and order, and the build machine's
checkout or install sets all three by accident. Here every entry gets the same time (the earliest
a zip can record), permissions reduced to "executable or not", and entries go in sorted order,
so the same files give the same bytes and the same hash: Terraform then sees an unchanged
artifact and deploys nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# The earliest time a zip entry can carry (MS-DOS dates start in 1980).
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
COMPRESS_LEVEL = 6  # zlib's default: level 9 saves about 1 % here and takes twice as long
_UNIX = 3  # ZipInfo.create_system: permissions are read from external_attr


@dataclass(frozen=True)
class ZipDigest:
    """What the manifest records about one zip."""

    sha256: str  # hex, the S3 key's suffix
    base64sha256: str  # base64 of the raw digest: Terraform's source_code_hash
    zipped_bytes: int
    unzipped_bytes: int  # what counts towards Lambda's 250 MB
    entries: int


def files_under(root: Path, prefix: str = "") -> dict[str, Path]:
    """Every regular file below ``root`` by its archive name (``prefix`` + relative POSIX path).
    Symbolic links are refused: a zip would store the target's bytes or a link, and neither is
    what the build meant."""
    found: dict[str, Path] = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_symlink():
                raise ValueError(f"{path.relative_to(root)} is a symbolic link")
            found[prefix + path.relative_to(root).as_posix()] = path
    return found


def write_zip(target: Path, entries: Mapping[str, Path]) -> ZipDigest:
    """Write ``entries`` (archive name -> file) to ``target``, reproducibly."""
    target.parent.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
        for name in sorted(entries):
            path = entries[name]
            data = path.read_bytes()
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.create_system = _UNIX
            info.external_attr = (
                stat.S_IFREG | (EXECUTABLE_MODE if executable else FILE_MODE)
            ) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=COMPRESS_LEVEL)
            unzipped += len(data)
    return digest(target, unzipped_bytes=unzipped, entries=len(entries))


def digest(
    path: Path, *, unzipped_bytes: int | None = None, entries: int | None = None
) -> ZipDigest:
    """The hashes and sizes of a zip on disk (sizes read from it when not given)."""
    raw = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            raw.update(block)
    if unzipped_bytes is None or entries is None:
        with zipfile.ZipFile(path) as zf:
            infos = [info for info in zf.infolist() if not info.is_dir()]
        unzipped_bytes = sum(info.file_size for info in infos)
        entries = len(infos)
    return ZipDigest(
        sha256=raw.hexdigest(),
        base64sha256=base64.b64encode(raw.digest()).decode("ascii"),
        zipped_bytes=path.stat().st_size,
        unzipped_bytes=unzipped_bytes,
        entries=entries,
    )


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def extract(path: Path, target: Path, *, members: Iterable[str] | None = None) -> None:
    """Unzip as Lambda does, keeping the executable bit (``ZipFile.extractall`` drops it)."""
    with zipfile.ZipFile(path) as zf:
        wanted = set(members) if members is not None else None
        for info in zf.infolist():
            if wanted is not None and info.filename not in wanted:
                continue
            written = Path(zf.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                written.chmod(mode)
