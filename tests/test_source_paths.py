"""Upload sources read by path: only files inside the allowed roots, even under a race.

A tool that may read files by path must not be tricked into reading a file outside its
roots by a directory swapped for a symlink between the check and the read. These tests
race a real process that keeps swapping a directory inside the root for a symlink to an
outside directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from filetier.errors import PathNotAllowedError, SourceNotFoundError
from filetier.paths import AllowedRoots

SWAPPER = """
import os, sys
inside, parked, outside = sys.argv[1:4]
while True:
    os.rename(inside, parked)
    os.symlink(outside, inside)
    os.unlink(inside)
    os.rename(parked, inside)
"""


def naive_read(roots: AllowedRoots, relative: str) -> bytes:
    """Check, then open by path: what the swap defeats (kept here to prove the race)."""
    resolved = (roots.default_root / relative).resolve()
    if not roots.is_allowed(resolved):
        raise PathNotAllowedError("outside")
    return resolved.read_bytes()


def safe_read(roots: AllowedRoots, relative: str) -> bytes:
    fd, _ = roots.open_source(relative)
    try:
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


def test_a_directory_swapped_for_a_symlink_never_lets_a_source_read_escape(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_bytes(b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_bytes(b"SECRET")
    roots = AllowedRoots([root])

    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(root / "d"), str(root / "d.parked"), str(outside)]
    )
    naive_leaks = safe_reads = safe_refusals = 0
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (naive_leaks and safe_reads > 200):
            try:
                if naive_read(roots, "d/f.txt") == b"SECRET":
                    naive_leaks += 1
            except (OSError, PathNotAllowedError):
                pass
            for _ in range(20):
                try:
                    data = safe_read(roots, "d/f.txt")
                except (PathNotAllowedError, SourceNotFoundError):
                    safe_refusals += 1
                    continue
                assert data == b"inside", "open_source read a file outside the root"
                safe_reads += 1
    finally:
        swapper.kill()
        swapper.wait()
    # The race was real: checking and then opening by path did read the outside file.
    assert naive_leaks > 0, "the swapper never beat a check-then-open; the test proves nothing"
    assert safe_reads > 200 and safe_refusals > 0
    assert (outside / "f.txt").read_bytes() == b"SECRET"


def test_source_refusals_are_clear_and_name_the_rule(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(root / "pipe")
    roots = AllowedRoots([root])

    with pytest.raises(PathNotAllowedError, match="outside the allowed roots"):
        roots.open_source("link.txt")
    with pytest.raises(PathNotAllowedError, match="outside the allowed roots"):
        roots.open_source(tmp_path / "secret.txt")
    with pytest.raises(PathNotAllowedError, match="outside the allowed roots"):
        roots.open_source("dir/../../secret.txt")
    with pytest.raises(SourceNotFoundError, match="no such file"):
        roots.open_source("missing.txt")
    with pytest.raises(SourceNotFoundError, match="no such file"):
        roots.open_source("nodir/missing.txt")
    with pytest.raises(SourceNotFoundError, match="not a regular file"):
        roots.open_source("dir")
    with pytest.raises(SourceNotFoundError, match="not a regular file"):
        roots.open_source("pipe")  # opened without blocking, then refused
    assert (tmp_path / "secret.txt").read_text() == "outside"
