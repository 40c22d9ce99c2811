"""Upload content, once or repeatedly, from a path, as bytes, or as a slow stream.

    upload_worker.py --path FILE [--as path|bytes|stream|mixed] [--repeat N] [--go PATH]
    upload_worker.py --slow-stream MIB [--chunk-delay SECONDS]

Prints ``{"event": "ready"}`` once the store is open, then one ``{"event": "uploaded", ...}``
per upload. ``--slow-stream`` uploads MIB one-MiB chunks of fresh random bytes, sleeping
between chunks, and prints ``{"event": "started"}`` once the first chunk has been staged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from _child import emit, run, wait_for_go

from filetier import FileStore

KINDS = ("path", "bytes", "stream")


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def slow_stream(mib: int, delay: float) -> AsyncIterator[bytes]:
    for index in range(mib):
        yield os.urandom(1024 * 1024)
        if index == 0:
            # The first chunk is in the staging file once the consumer asks for more.
            emit({"event": "started", "pid": os.getpid()})
        await asyncio.sleep(delay)


async def main(args: argparse.Namespace) -> None:
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})
        await wait_for_go(args.go)
        if args.slow_stream:
            result = await store.upload_file(
                slow_stream(args.slow_stream, args.chunk_delay), filename="slow.bin"
            )
            emit({"event": "uploaded", "file_id": str(result.file_id), "sha256": result.sha256})
            return
        path = Path(args.path)
        data = path.read_bytes() if args.kind != "path" else b""
        for index in range(args.repeat):
            kind = KINDS[index % len(KINDS)] if args.kind == "mixed" else args.kind
            if kind == "path":
                result = await store.upload_file(path)
            elif kind == "bytes":
                result = await store.upload_file(data or path.read_bytes(), filename=path.name)
            else:
                result = await store.upload_file(
                    chunks_of(data or path.read_bytes()), filename=path.name
                )
            emit(
                {
                    "event": "uploaded",
                    "kind": kind,
                    "file_id": str(result.file_id),
                    "sha256": result.sha256,
                    "bytes_written": result.bytes_written,
                    "deduplicated": result.deduplicated,
                }
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--path")
    parser.add_argument("--as", dest="kind", choices=(*KINDS, "mixed"), default="path")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--go")
    parser.add_argument("--slow-stream", type=int, default=0, metavar="MIB")
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    run(main(parser.parse_args()))
