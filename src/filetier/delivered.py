"""Copies delivered into the downloads folder, and when filetier may remove one.

A delivered copy is removed (``immediate`` at close, ``retain`` after its retention) only
while it is still exactly what filetier wrote: a regular file, not a symlink, whose
directory resolves inside the downloads folder, with the delivered size and SHA-256. A
file the user has since replaced or edited is theirs and is left alone.
"""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

from filetier.digest import hash_file


def removable_size(path: Path, downloads: Path, sha256: str | None) -> int | None:
    """The size of ``path`` when filetier may remove it, else None (blocking)."""
    try:
        st = path.lstat()
        inside = path.parent.resolve(strict=True).is_relative_to(downloads.resolve())
    except (FileNotFoundError, NotADirectoryError, RuntimeError):
        return None
    if not stat.S_ISREG(st.st_mode) or not inside:
        return None
    if sha256 and hash_file(path).sha256 != sha256:
        return None
    return st.st_size


def remove_delivered(path: Path, downloads: Path, sha256: str | None) -> int:
    """Remove a delivered copy if :func:`removable_size` allows; returns bytes freed."""
    size = removable_size(path, downloads, sha256)
    if size is None:
        return 0
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return size
