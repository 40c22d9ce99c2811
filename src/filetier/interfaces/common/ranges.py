"""HTTP conditional and range requests over one immutable representation (RFC 9110).

A file's content never changes under its id, so its strong validator is simply its
SHA-256: ``ETag: "<sha256>"``. The rules implemented here:

- ``If-None-Match`` (weak comparison, ``*`` matches) -> 304 Not Modified;
- ``Range: bytes=first-last | first- | -suffix``, one range only. Several ranges, another
  unit or a malformed header are ignored (the whole file is sent, as RFC 9110 allows);
- a range that starts past the end -> 416 with ``Content-Range: bytes */<size>``;
- ``If-Range`` must equal the strong ETag exactly, otherwise the Range is ignored and the
  whole (new) representation is sent: a resumed download never mixes two versions. A date
  in ``If-Range`` is never treated as a match, for the same reason.
- Range applies to GET only: HEAD answers as for the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_NUMBER = re.compile(r"[0-9]{1,30}")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive, of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


Unsatisfiable = Literal["unsatisfiable"]
UNSATISFIABLE: Unsatisfiable = "unsatisfiable"


def strong_etag(sha256: str) -> str:
    return f'"{sha256}"'


def _entity_tags(header: str) -> list[str]:
    """The entity tags of an ``If-None-Match`` list, without ``W/`` (weak comparison)."""
    tags = []
    for item in header.split(","):
        tag = item.strip()
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` names this representation (or is ``*``)."""
    if if_none_match is None:
        return False
    tags = _entity_tags(if_none_match)
    return "*" in tags or etag in tags


def range_applies(if_range: str | None, etag: str) -> bool:
    """``If-Range`` allows the Range only when it is exactly our strong ETag."""
    return if_range is None or if_range.strip() == etag


def parse_range(header: str, size: int) -> ByteRange | Unsatisfiable | None:
    """The single byte range requested, ``UNSATISFIABLE``, or None to send everything."""
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first or last):
        return None
    if (first and not _NUMBER.fullmatch(first)) or (last and not _NUMBER.fullmatch(last)):
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid syntax: ignored
    if start >= size:
        return UNSATISFIABLE
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)
