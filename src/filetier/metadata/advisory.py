"""PostgreSQL advisory-lock keys, shared by every host on the database.

They live beside the queries because both the repository (the per-owner quota lock taken
inside an insert's transaction) and :mod:`filetier.coordination` (content locks) need the
same keys, and the repository sits below coordination.
"""

from __future__ import annotations

import hashlib

# First key of the two-int advisory lock form: keeps filetier's locks apart from any
# other application's on the same database ("ft" + 1).
ADVISORY_CLASS = 0x6674_0001


def lock_digest(key: str) -> str:
    """The hex SHA-256 naming a lock: ``key`` itself when it already is one (a content
    hash), else the hash of the name (``provider:kimi:...``)."""
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def advisory_key(key: str) -> int:
    """A signed 32-bit key from the name (the second int of the two-int form)."""
    value = int(lock_digest(key)[:8], 16)
    return value - (1 << 32) if value >= 1 << 31 else value
