"""Which local copies were hashed in full recently: the memo that lets a file fetched over
and over cost one SHA-256 pass per window instead of one per download (see
:mod:`filetier.interfaces.http.content`, which consults it before serving a copy).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

VERIFIED_COPIES_MAX = 4096

_Identity = tuple[str, int, int, int, int, int]


class VerifiedCopies:
    """Local copies whose whole content matched their SHA-256, by file identity, each
    trusted for ``ttl_seconds`` after it was hashed (never extended by being used)."""

    def __init__(self, ttl_seconds: float, capacity: int = VERIFIED_COPIES_MAX) -> None:
        self._ttl = ttl_seconds
        self._capacity = capacity
        self._known: OrderedDict[_Identity, float] = OrderedDict()
        self.hashed = 0  # copies hashed in full (and found good)
        self.trusted = 0  # whole downloads served within a window, without hashing

    @staticmethod
    def _identity(sha256: str, st: os.stat_result) -> _Identity:
        return (sha256, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def __contains__(self, item: tuple[str, os.stat_result]) -> bool:
        key = self._identity(*item)
        verified_at = self._known.get(key)
        if verified_at is None:
            return False
        if time.monotonic() - verified_at >= self._ttl:
            del self._known[key]
            return False
        self._known.move_to_end(key)
        return True

    def add(self, sha256: str, st: os.stat_result) -> None:
        """Remember a copy just hashed in full (and found good)."""
        self.hashed += 1
        if self._ttl <= 0:
            return
        key = self._identity(sha256, st)
        self._known[key] = time.monotonic()
        self._known.move_to_end(key)
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def discard(self, sha256: str, st: os.stat_result) -> None:
        self._known.pop(self._identity(sha256, st), None)
