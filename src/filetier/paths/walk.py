"""Walking from a root with directory file descriptors, ``O_NOFOLLOW`` at every step, so
no symlink planted or swapped in on the way is ever followed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from filetier.errors import PathNotAllowedError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What ``open(..., O_NOFOLLOW | O_DIRECTORY)`` reports when the component is a symlink
# (ELOOP on Linux and macOS, EMLINK on FreeBSD) or a regular file (ENOTDIR).
SWAPPED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})


def strictly_inside(path: Path, root: Path) -> bool:
    """Component-wise containment: ``/srv/root-evil/x`` is not inside ``/srv/root``."""
    return path != root and path.is_relative_to(root)


class WalkStopped(Exception):
    """An ``OSError`` met while walking from a root; ``component`` is ``""`` for the root."""

    def __init__(self, component: str, error: OSError) -> None:
        super().__init__(component, error)
        self.component = component
        self.error = error


def open_dir(component: str, dir_fd: int) -> int:
    return os.open(component, DIR_FLAGS, dir_fd=dir_fd)


def open_beneath(root: Path, components: Iterable[str], open_dir: Callable[[str, int], int]) -> int:
    """The fd of ``root/components…``, each directory opened relative to the one before
    by ``open_dir`` (``O_NOFOLLOW | O_DIRECTORY``), so no symlink is ever followed. The
    caller closes the fd; an ``OSError`` on the way becomes :class:`WalkStopped`."""
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError as exc:
        raise WalkStopped("", exc) from None
    try:
        for component in components:
            try:
                next_fd = open_dir(component, fd)
            except OSError as exc:
                raise WalkStopped(component, exc) from None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def swapped(path: Path, component: str) -> PathNotAllowedError:
    return PathNotAllowedError(
        f"Source {str(path)!r} cannot be read because {component!r} on the way there is a "
        "symbolic link or not a directory (it may have been swapped after the check)"
    )
