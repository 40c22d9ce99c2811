"""Delete every file with one content, over and over, until told to stop.

    delete_worker.py SHA256 (--stop PATH | --once) [--go PATH]

Prints ``{"event": "ready"}``, then loops until the ``--stop`` file exists (or runs one
round with ``--once``) and prints ``{"event": "done", "deleted": n, "blobs_deleted": m}``.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from _child import emit, run, wait_for_go

from filetier import FileStore, NotFoundError


async def main(args: argparse.Namespace) -> None:
    deleted = blobs_deleted = rounds = 0
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})
        await wait_for_go(args.go)
        while not (args.stop and os.path.exists(args.stop)):
            page = await store.list(sha256=args.sha256, limit=1000)
            for record in page.items:
                try:
                    result = await store.delete(record.file_id)
                except NotFoundError:
                    continue
                deleted += 1
                blobs_deleted += result.blob_deleted
            rounds += 1
            if args.once:
                break
            if not page.items:
                await asyncio.sleep(0.001)
    emit({"event": "done", "deleted": deleted, "blobs_deleted": blobs_deleted, "rounds": rounds})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("sha256")
    until = parser.add_mutually_exclusive_group(required=True)
    until.add_argument("--stop")
    until.add_argument("--once", action="store_true")
    parser.add_argument("--go")
    run(main(parser.parse_args()))
