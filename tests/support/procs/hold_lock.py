"""Hold one content lock from another process until told to let go (or killed).

    hold_lock.py file LOCK_DIR KEY GO | hold_lock.py postgresql DATABASE_URL KEY GO

Prints ``{"event": "held", "got": bool}`` once the lock is taken (waiting up to 10 s), then
holds it until the file GO exists, releases it and prints ``{"event": "released"}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _child import emit, run, wait_for_go

from filetier.content_locks import AdvisoryContentLocks, ContentLocks, FileContentLocks
from filetier.metadata.database import Database


async def main(kind: str, target: str, key: str, go: str) -> None:
    db = Database(target) if kind == "postgresql" else None
    locks: ContentLocks = (
        AdvisoryContentLocks(db, 10.0) if db is not None else FileContentLocks(Path(target), 10.0)
    )
    try:
        async with locks.hold(key) as got:
            emit({"event": "held", "got": got})
            await wait_for_go(go, timeout=120)
        emit({"event": "released"})
    finally:
        if db is not None:
            await db.close()


if __name__ == "__main__":
    run(main(*sys.argv[1:5]))
