"""File and folder names filetier makes from untrusted text: one component, portable
(Windows' reserved names and characters avoided), at most ``NAME_MAX`` bytes of UTF-8.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

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
_OWNER_SUFFIX_RE = re.compile(r"-[0-9a-f]{16}$")


def fit_utf8(text: str, limit: int) -> str:
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


def utf8_len(text: str) -> int:
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
    if utf8_len(name) > NAME_MAX_BYTES:
        stem, dot, extension = name.rpartition(".")
        extension = dot + extension
        if stem and utf8_len(extension) <= _MAX_KEPT_EXTENSION_BYTES:
            name = fit_utf8(stem, NAME_MAX_BYTES - utf8_len(extension)) + extension
        else:
            name = fit_utf8(name, NAME_MAX_BYTES)
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
    return f"{fit_utf8(clean.lstrip('.') or 'owner', 200)}-{digest}"
