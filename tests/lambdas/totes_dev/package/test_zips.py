"""The same files give the same zip, whatever their times, permissions or creation order."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from totes_dev.package import zips


def _tree(root: Path, order: list[str], mtime: int, mode: int) -> None:
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"contents of {name}\n".encode())
        path.chmod(mode)
        os.utime(path, (mtime, mtime))


def test_times_modes_and_creation_order_do_not_change_the_bytes(tmp_path: Path) -> None:
    _tree(tmp_path / "a", ["pkg/b.py", "pkg/a.py", "top.py"], 1_700_000_000, 0o664)
    _tree(tmp_path / "b", ["top.py", "pkg/a.py", "pkg/b.py"], 1_800_000_000, 0o600)
    first = zips.write_zip(tmp_path / "a.zip", zips.files_under(tmp_path / "a", "python/"))
    second = zips.write_zip(tmp_path / "b.zip", zips.files_under(tmp_path / "b", "python/"))
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["python/pkg/a.py", "python/pkg/b.py", "python/top.py"]
        assert {(i.external_attr >> 16) & 0o777 for i in zf.infolist()} == {0o644}
    assert first.unzipped_bytes == sum(
        len(f"contents of {n}\n") for n in ("pkg/b.py", "pkg/a.py", "top.py")
    )


def test_the_executable_bit_survives_and_extract_restores_it(tmp_path: Path) -> None:
    _tree(tmp_path / "src", ["tool.sh"], 1_700_000_000, 0o700)
    zips.write_zip(tmp_path / "x.zip", zips.files_under(tmp_path / "src"))
    zips.extract(tmp_path / "x.zip", tmp_path / "out")
    assert (tmp_path / "out" / "tool.sh").stat().st_mode & 0o777 == 0o755


def test_digest_matches_what_it_reads_back(tmp_path: Path) -> None:
    _tree(tmp_path / "src", ["a.txt", "b/c.txt"], 1_700_000_000, 0o644)
    written = zips.write_zip(tmp_path / "x.zip", zips.files_under(tmp_path / "src"))
    assert zips.digest(tmp_path / "x.zip") == written
    assert written.entries == 2


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    _tree(tmp_path / "src", ["real.txt"], 1_700_000_000, 0o644)
    (tmp_path / "src" / "link.txt").symlink_to("real.txt")
    with pytest.raises(ValueError, match=r"link\.txt is a symbolic link"):
        zips.files_under(tmp_path / "src")
