"""The SHA-256 of a primary object, read in place when it is a local file."""

from __future__ import annotations

import asyncio

from filetier.digest import StreamDigest, hash_file
from filetier.errors import ObjectMissing
from filetier.tiers.protocols import Get, LocalPath


async def hash_object(primary: Get, key: str) -> StreamDigest | None:
    """SHA-256 and size of the object under ``key``, or None when it is missing."""
    if isinstance(primary, LocalPath):
        path = primary.local_path(key)
        try:
            return await asyncio.to_thread(hash_file, path)
        except FileNotFoundError:
            return None
    digest = StreamDigest()
    try:
        async for chunk in primary.get_stream(key):
            digest.update(chunk)
    except ObjectMissing:
        return None
    return digest
