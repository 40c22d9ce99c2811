""":class:`AllowedRoots`: which destinations and upload sources are inside the configured
roots, decided on resolved paths component by component, never by string prefix.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from filetier.errors import (
    InvalidInputError,
    PathNotAllowedError,
    SourceNotAFileError,
    SourceNotFoundError,
)
from filetier.modes import make_dirs
from filetier.paths.destination import SafeDestination
from filetier.paths.names import NAME_MAX_BYTES, safe_filename, utf8_len
from filetier.paths.walk import (
    SWAPPED_ERRNOS,
    WalkStopped,
    open_beneath,
    open_dir,
    strictly_inside,
    swapped,
)


def _roots_text(roots: Iterable[Path]) -> str:
    return ", ".join(repr(str(root)) for root in roots)


def _resolve(path: Path, shown: str, roots: Sequence[Path]) -> Path:
    """``path.resolve()``, with a symlink loop reported as a refusal instead of a crash."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: pathlib's "Symlink loop"
        raise PathNotAllowedError(
            f"Destination {shown!r} cannot be resolved ({exc.__class__.__name__}), "
            f"so it is refused; choose a path inside the allowed roots: {_roots_text(roots)}."
        ) from None


def _lstat_mode(path: Path) -> int | None:
    """The ``st_mode`` of ``path`` without following a final symlink; None if absent.

    Any OSError (missing, a file where a directory was expected, name too long) counts as
    absent: the directory-fd walk in :meth:`SafeDestination.open_parent` has the final word.
    """
    try:
        return os.lstat(path).st_mode
    except (OSError, ValueError):
        return None


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory (following symlinks); never raises."""
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except (OSError, ValueError):
        return False


class AllowedRoots:
    """The directories downloads may be written into; the first one is the default.

    Roots are expanded (``~``) and resolved once, at construction, so later checks compare
    real paths with real paths. A root is created (``mkdir -p``) only when a destination
    inside it is accepted, so configuring a root that is never used leaves no trace.
    Roots are operator configuration and trusted; destinations are not.
    """

    def __init__(self, roots: Sequence[str | os.PathLike[str]]) -> None:
        if isinstance(roots, str | os.PathLike):  # one root passed bare, not in a list
            roots = [roots]
        resolved: list[Path] = []
        for root in roots:
            text = os.fspath(root)
            if not text or "\x00" in text:
                raise InvalidInputError(
                    f"Allowed root {text!r} is empty or contains a NUL byte; "
                    "configure each allowed root as a real directory path."
                )
            try:
                resolved.append(Path(text).expanduser().resolve())
            except RuntimeError as exc:  # "~user" with no such user, or a symlink loop
                raise InvalidInputError(
                    f"Allowed root {text!r} cannot be resolved ({exc}); "
                    "configure each allowed root as a real directory path."
                ) from None
        if not resolved:
            raise InvalidInputError(
                "No allowed roots were given; configure at least one directory that "
                "downloads may be written into."
            )
        self._roots: tuple[Path, ...] = tuple(resolved)

    @property
    def roots(self) -> tuple[Path, ...]:
        """The resolved roots, in configured order."""
        return self._roots

    @property
    def default_root(self) -> Path:
        """Where relative and omitted destinations go: the first root."""
        return self._roots[0]

    def __repr__(self) -> str:
        return f"AllowedRoots([{_roots_text(self._roots)}])"

    def _refuse(self, shown: str, reason: str) -> PathNotAllowedError:
        return PathNotAllowedError(
            f"Destination {shown!r} {reason}; "
            f"it must be inside the allowed roots: {_roots_text(self._roots)}."
        )

    def _root_of(self, path: Path) -> Path | None:
        """The deepest root that strictly contains the resolved ``path``, if any."""
        containing = [root for root in self._roots if strictly_inside(path, root)]
        return max(containing, key=lambda root: len(root.parts), default=None)

    def _absolute(self, destination: str | os.PathLike[str]) -> tuple[str, Path]:
        """Validate the raw text and make it absolute; no symlink is looked at yet."""
        raw = os.fsdecode(destination)
        if not raw:
            raise self._refuse(raw, "is empty (omit the destination to use the default)")
        if "\x00" in raw:
            raise self._refuse(raw, "contains a NUL byte, which no path may contain")
        try:
            os.fsencode(raw)
        except UnicodeEncodeError:
            raise self._refuse(raw, "cannot be encoded as a file system path") from None
        path = Path(raw)
        # Checked on the caller's text, before any resolution: "sub/../x" is refused even
        # though it would land back inside, because it is a mistake or a probe.
        if ".." in path.parts:
            raise self._refuse(raw, "contains a '..' component, which is not allowed")
        for part in path.parts:
            if utf8_len(part) > NAME_MAX_BYTES:
                raise self._refuse(
                    raw, f"has a component longer than {NAME_MAX_BYTES} bytes ({part[:40]!r}...)"
                )
        if path.parts[:1] == ("~",):
            # Only the caller's own home; "~user" stays a plain name, so untrusted input
            # cannot make us look up arbitrary accounts.
            try:
                path = Path.home().joinpath(*path.parts[1:])
            except RuntimeError:  # no HOME and no passwd entry
                raise self._refuse(raw, "starts with '~' but there is no home directory") from None
        if not path.is_absolute():
            path = self.default_root / path
        return raw, path

    def resolve_destination(
        self, destination: str | os.PathLike[str] | None, *, default_name: str
    ) -> SafeDestination:
        """Check ``destination`` and say exactly where the file will be written.

        - ``None`` means ``<first root>/<safe_filename(default_name)>``.
        - A relative destination is relative to the first root, not to the process's CWD
          (which a server's caller neither knows nor controls). A leading ``~`` or ``~/``
          is the current user's home; ``~name`` is an ordinary relative name.
        - An existing directory (or a symlink to one), a root itself, ``.``, or anything
          ending in a path separator means "put it in there as ``safe_filename(default_name)``".
        - Otherwise the last component is the file name, taken as given; an existing regular
          file of that name is replaced only if the writer asks (see
          :meth:`SafeDestination.publish`), a symlink of that name is refused.

        Symlinks in the directory part are resolved and the result must stay strictly inside
        a root; the returned :class:`SafeDestination` records the resolved location, and its
        writing methods re-check every component against swaps. Missing directories are not
        created here but by :meth:`SafeDestination.open_parent`; only the root is created.

        Raises :class:`~filetier.errors.PathNotAllowedError` with a one-sentence reason.
        """
        name = safe_filename(default_name)
        if destination is None:
            final = self.default_root / name
            return self._accept(str(final), final)

        raw, path = self._absolute(destination)
        # The caller's spelling decides "this is a directory": "out/" or "out/." mean
        # "into out", even if out does not exist yet.
        last = re.split(r"[/\\]" if os.altsep else "/", raw)[-1]
        wants_dir = last in {"", "."}

        # Resolve the directory part; the last component is looked at without following it.
        candidate = _resolve(path.parent, raw, self._roots) / path.name
        if not any(candidate.is_relative_to(root) for root in self._roots):
            # Refuse before probing anything outside: no existence oracle for other paths.
            raise self._refuse(raw, f"resolves to {str(candidate)!r}, outside every allowed root")
        mode = _lstat_mode(candidate)

        if mode is not None and stat.S_ISLNK(mode):
            target = _resolve(candidate, raw, self._roots)
            if not _is_dir(target):
                raise self._refuse(
                    raw, "is a symbolic link, and filetier never writes through a symlink"
                )
            final = target / name  # a link to a directory is used as that directory
        elif wants_dir or candidate in self._roots or (mode is not None and stat.S_ISDIR(mode)):
            if mode is not None and not stat.S_ISDIR(mode):
                raise self._refuse(raw, "is used as a directory but is an existing file")
            final = candidate / name
        else:
            final = candidate
        return self._accept(raw, final)

    def _accept(self, shown: str, final: Path) -> SafeDestination:
        """Prove containment of the final path, check its last component, create the root."""
        root = self._root_of(final)
        if root is None:
            raise self._refuse(shown, f"resolves to {str(final)!r}, outside every allowed root")
        mode = _lstat_mode(final)
        if mode is not None and stat.S_ISLNK(mode):
            raise self._refuse(
                shown,
                f"would write through the symbolic link {str(final)!r}, "
                "and filetier never writes through a symlink",
            )
        if mode is not None and stat.S_ISDIR(mode):
            raise self._refuse(shown, f"would replace the existing directory {str(final)!r}")
        try:
            make_dirs(root)
        except FileExistsError:
            raise self._refuse(
                shown,
                f"lies in the allowed root {str(root)!r}, which exists but is not a directory",
            ) from None
        return SafeDestination(root=root, path=final)

    def is_allowed(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (relative to the first root if relative) resolves strictly inside
        a root, with no NUL byte and no ``..``. Creates nothing.

        A convenience for listing and UI hints; to write, always go through
        :meth:`resolve_destination`, which also applies the symlink and directory rules.
        """
        try:
            _, absolute = self._absolute(path)
            resolved = _resolve(absolute, "", self._roots)
        except (PathNotAllowedError, TypeError):
            return False
        return self._root_of(resolved) is not None

    def open_source(self, source: str | os.PathLike[str]) -> tuple[int, Path]:
        """Open a file to read from inside the roots; returns ``(fd, resolved path)``.

        Symlinks are followed at check time (a link inside a root to a file inside a root
        is fine), and the resolved path must lie strictly inside a root. The file is then
        opened by walking directory fds from that root with ``O_NOFOLLOW``, and it is opened
        with ``O_NOFOLLOW`` too. A component swapped for a symlink after the check
        cannot redirect the read outside: it is refused instead. The caller reads the
        returned descriptor, never the path again, and closes it.
        """
        refusal = PathNotAllowedError(
            f"Source {os.fsdecode(source)!r} is outside the allowed roots, so it cannot be "
            f"read by path; allowed roots: {_roots_text(self._roots)}."
        )
        try:
            _, absolute = self._absolute(source)
            resolved = _resolve(absolute, "", self._roots)
        except PathNotAllowedError:
            raise refusal from None
        root = self._root_of(resolved)
        if root is None:
            raise refusal
        try:
            dir_fd = open_beneath(root, resolved.relative_to(root).parts[:-1], open_dir)
        except WalkStopped as stop:
            if isinstance(stop.error, FileNotFoundError):
                raise SourceNotFoundError(f"no such file: {resolved}") from None
            if stop.component and stop.error.errno in SWAPPED_ERRNOS:
                raise swapped(resolved, stop.component) from None
            raise stop.error from None
        try:
            try:
                # O_NONBLOCK: a FIFO swapped in must not hang the open; refused below.
                fd = os.open(
                    resolved.name,
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                    dir_fd=dir_fd,
                )
            except FileNotFoundError:
                raise SourceNotFoundError(f"no such file: {resolved}") from None
            except OSError as exc:
                if exc.errno in SWAPPED_ERRNOS:
                    raise swapped(resolved, resolved.name) from None
                raise SourceNotFoundError(f"cannot read {resolved}: {exc.strerror}") from None
        finally:
            os.close(dir_fd)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = " (a directory)" if stat.S_ISDIR(mode) else ""
            raise SourceNotAFileError(f"not a regular file: {resolved}{kind}")
        os.set_blocking(fd, True)
        return fd, resolved

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str | os.PathLike):
            return False
        return self.is_allowed(path)
