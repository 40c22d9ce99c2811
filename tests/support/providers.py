"""Settings and row readers shared by the provider tests (a loopback Kimi server)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from filetier import FileStore, Settings
from testbed.provider_server import ProviderServer

KEY = "sk-kimi-test-secret-7f3a9c1e5b2d"
ATTEMPTS = 3


def provider_settings(home: Path, server: ProviderServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        "allowed_roots": str(home.parent / "out"),
        "kimi_api_key": server.api_key,
        "kimi_base_url": server.base_url,
        "provider_retry_attempts": ATTEMPTS,
        "provider_max_retry_wait_seconds": 5,
        "provider_timeout_seconds": 2,
    }
    values.update(overrides)
    return Settings(**values)


async def put(store: FileStore, data: bytes, name: str = "notes.txt") -> str:
    return str((await store.upload_file(data, filename=name)).file_id)


def copies(home: Path) -> list[dict[str, Any]]:
    """The ``provider_file_uploads`` rows, read with sqlite3 behind filetier's back."""
    with sqlite3.connect(home / "filetier.db") as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM provider_file_uploads ORDER BY uploaded_at").fetchall()
    return [dict(r) for r in rows]
