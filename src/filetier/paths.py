"""Where a download may be written, and how to write it there without being redirected.

``download_file(file_id, destination)`` takes a destination from a caller we do not fully
trust (an LLM agent, an MCP client, a CLI user), so this module answers two questions:

1. **Is the destination allowed?** :class:`AllowedRoots` turns a destination into a
   :class:`SafeDestination` strictly inside one of the configured roots, or raises
   :class:`~filetier.errors.PathNotAllowedError`. Containment is decided on resolved
   paths and compared component by component, never by string prefix: the MCP filesystem
   server lost exactly that fight twice (CVE-2025-53110: ``/data-evil`` "starts with"
   ``/data``; CVE-2025-53109: a symlink planted inside the root points outside it).
   ``..`` is refused outright rather than normalised away, because a path that climbs out
   and back in is almost always a mistake or a probe, and refusing it is easier to explain.

2. **Does the write land where we checked?** Between the check and the write another
   process can swap a directory for a symlink (TOCTOU). :class:`SafeDestination` therefore
   never writes through a path string: it walks from the root with directory file
   descriptors, opening each component with ``O_NOFOLLOW``, writes a temporary file with
   ``O_EXCL | O_NOFOLLOW`` inside the final directory fd, and publishes it with a
   ``rename`` relative to that same fd. Renaming also means an existing destination is
   *replaced*, never written into, so a hard link or symlink planted at the final name can
   not carry our bytes somewhere else.

3. **May an existing file be replaced?** Only when the caller asks (``overwrite=True``).
   Otherwise the temp file is published with ``link``, which fails if the name exists,
   so no check-then-write race can clobber a file that appears meanwhile: the same bytes
   already there are a no-op success, different bytes are
   :class:`~filetier.errors.DestinationExistsError`.

The directory-fd calls (``dir_fd=``, ``O_NOFOLLOW``, ``O_DIRECTORY``) are POSIX-only, as is
filetier's download path. :func:`safe_filename` is portable and also avoids names Windows
would refuse, because downloaded files are often copied to other machines.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filetier.errors import (
    DestinationExistsError,
    InvalidInputError,
    PathNotAllowedError,
    SourceNotAFileError,
    SourceNotFoundError,
)
from filetier.modes import DIR_MODE, FILE_MODE, make_dirs

__all__ = ["AllowedRoots", "SafeDestination", "owner_folder", "safe_filename"]

#: Longest file name (one component) most filesystems accept, in bytes (``NAME_MAX``).
NAME_MAX_BYTES = 255

# An extension longer than this is not worth keeping when a name must be shortened: it is
# more likely part of the name (``report.final-version-for-review``) than a file type.
_MAX_KEPT_EXTENSION_BYTES = 16

_SEPARATORS_RE = re.compile(r"[/\\]")
_WINDOWS_RESERVED_CHARS = str.maketrans(dict.fromkeys('<>:"|?*', "_"))
# Windows also treats the superscript digits as COM/LPT port numbers.
_PORT_DIGITS = "123456789\u00b9\u00b2\u00b3"
_WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{d}" for d in _PORT_DIGITS}
    | {f"LPT{d}" for d in _PORT_DIGITS}
)
# Cc: C0/C1 controls incl. NUL and newlines. Cf: invisible format characters such as the
# U+202E RIGHT-TO-LEFT OVERRIDE, which makes ``evil\u202egpj.exe`` display as
# ``evilexe.jpg``. Cs: lone surrogates, which cannot be encoded as UTF-8 at all.
# Control and format characters (RTL overrides), surrogates, and the line and paragraph
# separators U+2028/U+2029 that would split a name across lines in logs and headers.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What ``open(..., O_NOFOLLOW | O_DIRECTORY)`` reports when the component is a symlink
# (ELOOP on Linux and macOS, EMLINK on FreeBSD) or a regular file (ENOTDIR).
_SWAPPED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EMLINK})
_TEMP_ATTEMPTS = 100
# link() is refused by a few file systems (FAT, some FUSE mounts); there the no-overwrite
# publish falls back to check-then-rename, which only a concurrent writer can race.
_NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})
_HASH_CHUNK = 1024 * 1024
_OWNER_SUFFIX_RE = re.compile(r"-[0-9a-f]{16}$")


def _fit_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``limit`` bytes.

    Cuts between characters, never inside one, so the result is always valid UTF-8.
    ``surrogateescape`` lets it also measure names decoded from undecodable bytes.
    """
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return text
    # Back up over UTF-8 continuation bytes (0b10xxxxxx) so no character is split.
    cut = limit
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:
        cut -= 1
    return encoded[:cut].decode("utf-8", "surrogateescape")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _clean_filename(name: str) -> str:
    """:func:`safe_filename` without the fallback; may return ``""``."""
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    # pathlib semantics: "dir/name/" names "name", not an empty last component.
    name = _SEPARATORS_RE.split(name.rstrip("/\\"))[-1]
    name = name.translate(_WINDOWS_RESERVED_CHARS).strip(" .")
    if not name:
        return ""
    # "CON", "con.txt" and "Con .tar.gz" all open the console device on Windows.
    if name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICE_NAMES:
        name = "_" + name
    if _utf8_len(name) > NAME_MAX_BYTES:
        stem, dot, extension = name.rpartition(".")
        extension = dot + extension
        if stem and _utf8_len(extension) <= _MAX_KEPT_EXTENSION_BYTES:
            name = _fit_utf8(stem, NAME_MAX_BYTES - _utf8_len(extension)) + extension
        else:
            name = _fit_utf8(name, NAME_MAX_BYTES)
        # The cut may have exposed a trailing dot or space, which Windows silently drops.
        name = name.rstrip(" .")
    return name


def safe_filename(name: str, fallback: str = "file") -> str:
    """A single file name that is safe to create inside a directory on any common OS.

    ``name`` usually comes from upload metadata, i.e. from whoever uploaded the file, so it
    is treated as hostile: only its last path component is kept (``/`` and ``\\`` both
    count), control and invisible format characters are dropped (NUL, newlines, the
    U+202E override that disguises ``.exe`` as ``.jpg``), leading and trailing dots and
    spaces are stripped (no hidden files, no ``.``/``..``, nothing Windows would mangle),
    ``<>:"|?*`` become ``_``, Windows device names (``CON``, ``nul.txt``, ``LPT1``...) get a
    ``_`` prefix, and the UTF-8 encoding is capped at 255 bytes without splitting a
    character, keeping a short extension so the file still opens with the right program.

    If nothing usable is left, the sanitised ``fallback`` is returned (``"file"`` if even
    that is empty), so the result is never empty, ``.`` or ``..``.
    """
    return _clean_filename(name) or _clean_filename(fallback) or "file"


def owner_folder(owner: str) -> str:
    """A directory name for ``owner`` that no other owner's name maps to.

    A plain lower-case name is kept as is (``alice``); anything ``safe_filename`` would
    change, or that differs only in case (case-insensitive file systems) or looks like
    one of our suffixed names, gets a hash of the exact owner appended
    (``Bob-3f2a…``), so two owners never share a default downloads folder.
    """
    clean = safe_filename(owner, fallback="owner")
    if (
        clean == owner == owner.lower()
        and not clean.startswith(".")
        and not (_OWNER_SUFFIX_RE.search(owner))
    ):
        return clean
    digest = hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{_fit_utf8(clean.lstrip('.') or 'owner', 200)}-{digest}"


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


def _strictly_inside(path: Path, root: Path) -> bool:
    """Component-wise containment: ``/srv/root-evil/x`` is not inside ``/srv/root``."""
    return path != root and path.is_relative_to(root)


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
        containing = [root for root in self._roots if _strictly_inside(path, root)]
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
            if _utf8_len(part) > NAME_MAX_BYTES:
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
            dir_fd = _open_beneath(root, resolved.relative_to(root).parts[:-1], _open_dir)
        except _WalkStopped as stop:
            if isinstance(stop.error, FileNotFoundError):
                raise SourceNotFoundError(f"no such file: {resolved}") from None
            if stop.component and stop.error.errno in _SWAPPED_ERRNOS:
                raise _swapped(resolved, stop.component) from None
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
                if exc.errno in _SWAPPED_ERRNOS:
                    raise _swapped(resolved, resolved.name) from None
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


class _WalkStopped(Exception):
    """An ``OSError`` met while walking from a root; ``component`` is ``""`` for the root."""

    def __init__(self, component: str, error: OSError) -> None:
        super().__init__(component, error)
        self.component = component
        self.error = error


def _open_dir(component: str, dir_fd: int) -> int:
    return os.open(component, _DIR_FLAGS, dir_fd=dir_fd)


def _open_beneath(
    root: Path, components: Iterable[str], open_dir: Callable[[str, int], int]
) -> int:
    """The fd of ``root/components…``, each directory opened relative to the one before
    by ``open_dir`` (``O_NOFOLLOW | O_DIRECTORY``), so no symlink is ever followed. The
    caller closes the fd; an ``OSError`` on the way becomes :class:`_WalkStopped`."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise _WalkStopped("", exc) from None
    try:
        for component in components:
            try:
                next_fd = open_dir(component, fd)
            except OSError as exc:
                raise _WalkStopped(component, exc) from None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _swapped(path: Path, component: str) -> PathNotAllowedError:
    return PathNotAllowedError(
        f"Source {str(path)!r} cannot be read because {component!r} on the way there is a "
        "symbolic link or not a directory (it may have been swapped after the check)"
    )


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
            or not _strictly_inside(self.path, self.root)
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
            return _open_beneath(self.root, self.relative_dirs, self._open_or_create_dir)
        except _WalkStopped as stop:
            if stop.error.errno not in _SWAPPED_ERRNOS:
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
            return _open_dir(component, dir_fd)
        except FileNotFoundError:
            pass
        # Losing a race to another creator is fine; whatever is there is re-checked by the
        # O_NOFOLLOW open below.
        with contextlib.suppress(FileExistsError):
            os.mkdir(component, DIR_MODE, dir_fd=dir_fd)
        return _open_dir(component, dir_fd)

    def create_temp(self, parent_fd: int) -> tuple[int, str]:
        """Create a new, empty temp file next to the destination: ``.<name>.<hex>.tmp``.

        Writing to a temp and renaming it means readers never see a half-written file and a
        failed download leaves the old file intact. ``O_EXCL | O_NOFOLLOW`` guarantee the
        file is new, so nothing planted under that name can receive the bytes. The name is
        shortened when needed to stay within 255 bytes. Returns ``(fd, temp_name)``; the
        caller closes the fd.
        """
        stem = _fit_utf8(self.name, NAME_MAX_BYTES - 22)  # ".", ".", 16 hex, ".tmp"
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
            parent_fd = os.open(self.path.parent, _DIR_FLAGS)
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
