""":class:`SafeDestination`: a checked destination, written through directory file
descriptors (temp file, then ``rename`` or ``link``) so the write lands where it was
checked. See :mod:`filetier.paths` for the whole protocol.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from filetier.errors import (
    DestinationExistsError,
    PathNotAllowedError,
)
from filetier.modes import DIR_MODE, FILE_MODE
from filetier.paths.names import NAME_MAX_BYTES, fit_utf8
from filetier.paths.walk import (
    DIR_FLAGS,
    SWAPPED_ERRNOS,
    WalkStopped,
    open_beneath,
    open_dir,
    strictly_inside,
)

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_ATTEMPTS = 100
# link() is refused by a few file systems (FAT, some FUSE mounts); there the no-overwrite
# publish falls back to check-then-rename, which only a concurrent writer can race.
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SafeDestination:
    """A checked destination: ``path`` lies strictly inside ``root`` (both resolved).

    The check in :class:`AllowedRoots` is advice; the methods here enforce it at write time
    by walking directory file descriptors from ``root`` with ``O_NOFOLLOW``, so a directory
    swapped for a symlink after the check cannot redirect the write. The protocol is::

        parent_fd = dest.open_parent()
        try:
            fd, temp = dest.create_temp(parent_fd)
            ...write and fsync fd, close it...
            dest.publish(parent_fd, temp)      # or dest.discard(parent_fd, temp) on failure
        finally:
            os.close(parent_fd)
    """

    root: Path
    path: Path

    def __post_init__(self) -> None:
        # Built by AllowedRoots normally; refuse a hand-built one that could escape.
        if (
            not self.root.is_absolute()
            or ".." in self.path.parts
            or not strictly_inside(self.path, self.root)
        ):
            raise PathNotAllowedError(
                f"Destination {str(self.path)!r} is not strictly inside the allowed root "
                f"{str(self.root)!r}; build destinations with AllowedRoots.resolve_destination."
            )

    @property
    def name(self) -> str:
        """The final file name."""
        return self.path.name

    @property
    def relative_dirs(self) -> tuple[str, ...]:
        """Directory components from the root to the parent (empty if the parent is root)."""
        return self.path.relative_to(self.root).parts[:-1]

    def _refuse(self, reason: str) -> PathNotAllowedError:
        return PathNotAllowedError(
            f"Destination {str(self.path)!r} {reason}; "
            f"it must stay inside the allowed root {str(self.root)!r}."
        )

    def open_parent(self) -> int:
        """Open the parent directory by walking from the root, never following a symlink.

        Each component is opened relative to the previous directory fd with
        ``O_NOFOLLOW | O_DIRECTORY``; a missing one is created (mode 0o700, see filetier.modes)
        first. If a component is a symlink or a file (for instance swapped in after
        :meth:`AllowedRoots.resolve_destination` checked it), the walk stops with
        :class:`~filetier.errors.PathNotAllowedError`. Returns the parent's fd, which the
        caller must close.
        """
        try:
            return open_beneath(self.root, self.relative_dirs, self._open_or_create_dir)
        except WalkStopped as stop:
            if stop.error.errno not in SWAPPED_ERRNOS:
                raise stop.error from None
            if not stop.component:
                raise self._refuse(
                    "cannot be written because the root is no longer a real directory"
                ) from None
            raise self._refuse(
                f"cannot be written because {stop.component!r} on the way there is a "
                "symbolic link or a file (it may have been swapped after the check)"
            ) from None

    @staticmethod
    def _open_or_create_dir(component: str, dir_fd: int) -> int:
        try:
            return open_dir(component, dir_fd)
        except FileNotFoundError:
            pass
        # Losing a race to another creator is fine; whatever is there is re-checked by the
        # O_NOFOLLOW open below.
        with contextlib.suppress(FileExistsError):
            os.mkdir(component, DIR_MODE, dir_fd=dir_fd)
        return open_dir(component, dir_fd)

    def create_temp(self, parent_fd: int) -> tuple[int, str]:
        """Create a new, empty temp file next to the destination: ``.<name>.<hex>.tmp``.

        Writing to a temp and renaming it means readers never see a half-written file and a
        failed download leaves the old file intact. ``O_EXCL | O_NOFOLLOW`` guarantee the
        file is new, so nothing planted under that name can receive the bytes. The name is
        shortened when needed to stay within 255 bytes. Returns ``(fd, temp_name)``; the
        caller closes the fd.
        """
        stem = fit_utf8(self.name, NAME_MAX_BYTES - 22)  # ".", ".", 16 hex, ".tmp"
        for _ in range(_TEMP_ATTEMPTS):
            temp_name = f".{stem}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(temp_name, _TEMP_FLAGS, FILE_MODE, dir_fd=parent_fd)
            except FileExistsError:
                continue
            return fd, temp_name
        raise FileExistsError(  # pragma: no cover - 64 random bits colliding 100 times
            errno.EEXIST, "could not create a unique temporary file", str(self.path.parent)
        )

    def publish(
        self, parent_fd: int, temp_name: str, *, overwrite: bool = False, sha256: str | None = None
    ) -> bool:
        """Atomically move the finished temp file to the final name; True when it was.

        With ``overwrite=False`` (the default) an existing file is never replaced: the temp
        file is hard-linked to the final name, which fails if the name exists. A file
        already there with the SHA-256 ``sha256`` is the same delivery: the temp is
        dropped and False returned. Any other file raises
        :class:`~filetier.errors.DestinationExistsError` and stays as it was.

        With ``overwrite=True`` a regular file is replaced by a rename, which replaces the
        directory entry and never writes into an existing inode, so a hard link to a file
        outside the root is left untouched. Either way a directory or symlink at the final
        name is refused (and the temp removed): the first is not ours to replace, the
        second might be expected to be written through. The directory is then fsynced so
        the new name survives a crash.
        """
        try:
            mode: int | None = os.lstat(self.name, dir_fd=parent_fd).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            self.discard(parent_fd, temp_name)
            kind = "a directory" if stat.S_ISDIR(mode) else "a symbolic link"
            raise self._refuse(f"is now {kind}, so it was not replaced")
        if not overwrite:
            published = self._publish_new(parent_fd, temp_name, sha256)
            if not published:
                return False
        else:
            try:
                os.replace(temp_name, self.name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            except (IsADirectoryError, NotADirectoryError):  # a directory appeared after lstat
                self.discard(parent_fd, temp_name)
                raise self._refuse("is now a directory, so it was not replaced") from None
        with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
            os.fsync(parent_fd)
        return True

    def _publish_new(self, parent_fd: int, temp_name: str, sha256: str | None) -> bool:
        """Give the temp file the final name only if that name is free (see publish)."""
        try:
            os.link(
                temp_name,
                self.name,
                src_dir_fd=parent_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        except FileExistsError:
            return self._publish_new_taken(parent_fd, temp_name, sha256)
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                self.discard(parent_fd, temp_name)
                raise
            if self._exists(parent_fd):
                return self._publish_new_taken(parent_fd, temp_name, sha256)
            os.replace(temp_name, self.name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            return True
        self.discard(parent_fd, temp_name)  # the final name now holds the file
        return True

    def _publish_new_taken(self, parent_fd: int, temp_name: str, sha256: str | None) -> bool:
        same = sha256 is not None and self._holds(parent_fd, sha256)
        self.discard(parent_fd, temp_name)
        if same:
            return False
        raise self._taken()

    def _taken(self) -> DestinationExistsError:
        return DestinationExistsError(
            f"Destination {str(self.path)!r} already exists with different content; "
            "it was left as it is. Choose another name, or ask to replace it "
            "(overwrite=True; CLI: --force)."
        )

    def _exists(self, parent_fd: int) -> bool:
        try:
            os.lstat(self.name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        return True

    def _holds(self, parent_fd: int, sha256: str) -> bool:
        """Whether the final name is a regular file whose SHA-256 is ``sha256``."""
        try:
            fd = os.open(
                self.name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                dir_fd=parent_fd,
            )
        except OSError:
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            digest = hashlib.sha256()
            while chunk := os.read(fd, _HASH_CHUNK):
                digest.update(chunk)
            return digest.hexdigest() == sha256
        finally:
            os.close(fd)

    def taken_by_other(self, size: int, sha256: str | None) -> bool:
        """Whether the final name already holds something other than these bytes (a file
        of another size or, when ``sha256`` is given, another hash; a directory...):
        checked before a transfer starts, so a refusal costs nothing. :meth:`publish`
        checks again, atomically."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return True
        if sha256 is None:
            return False
        try:
            parent_fd = os.open(self.path.parent, DIR_FLAGS)
        except OSError:
            return True
        try:
            return not self._holds(parent_fd, sha256)
        finally:
            os.close(parent_fd)

    def refuse(self) -> DestinationExistsError:
        """The error for a name that :meth:`taken_by_other` found taken."""
        return self._taken()

    def discard(self, parent_fd: int, temp_name: str) -> None:
        """Remove a temp file after a failure; already gone is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=parent_fd)

    def write_bytes(self, data: bytes, *, overwrite: bool = False) -> bool:
        """Write ``data`` to the destination with the full safe protocol, durably.

        For small files and tests; large downloads stream into :meth:`create_temp`'s fd.
        Returns False when the same bytes were already there (see :meth:`publish`).
        """
        parent_fd = self.open_parent()
        try:
            fd, temp_name = self.create_temp(parent_fd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return self.publish(
                    parent_fd,
                    temp_name,
                    overwrite=overwrite,
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            except BaseException:
                self.discard(parent_fd, temp_name)
                raise
        finally:
            os.close(parent_fd)
