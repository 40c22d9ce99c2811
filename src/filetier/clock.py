"""The one clock: timezone-aware UTC ``now`` for rows, expiries and plans.

One function so every layer (repository, store, maintenance, providers) reads the time
the same way, and a test that needs another time has one name to look for.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
