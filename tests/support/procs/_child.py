"""Plumbing every child script shares: a start barrier, JSON on stdout, a hard exit.

A child is configured only through the environment (``FILETIER_HOME``,
``FILETIER_PRIMARY_URL``, ``FILE_CACHE_DIR``, ``FILETIER_FSYNC`` ...), exactly as a user's
process would be, so ``FileStore()`` here is built from ``Settings()`` and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn


def emit(message: dict[str, Any]) -> None:
    """One JSON object per line on stdout, flushed at once (the parent may kill us next)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def wait_for_go(go: str | None, timeout: float = 60.0) -> None:
    """Block until the parent creates the ``go`` file: every child starts together."""
    if go is None:
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no go file {go} after {timeout}s")
        await asyncio.sleep(0.002)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def run(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run ``main`` and leave with ``os._exit``: obstore's runtime may abort the
    interpreter during a normal shutdown of a short script."""
    code = 0
    try:
        asyncio.run(main)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
