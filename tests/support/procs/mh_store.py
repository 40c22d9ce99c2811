"""One library user of the multi-host tests, released by the go barrier.

    mh_store.py upload PATH [--repeat N] [--go PATH]
    mh_store.py download FILE_ID DEST [--go PATH]
    mh_store.py delete FILE_ID [--when-file-in DIR] [--go PATH]
    mh_store.py delete-content SHA256 --stop PATH [--go PATH]

The store is built from the environment only (``FILETIER_HOME``, ``DATABASE_URL``, the
bucket). Prints ``{"event": "ready"}`` once the store is open and waits for the go file;
then:

- ``upload``: one ``{"event": "uploaded", ...}`` per upload (the UploadResult's fields);
- ``download``: the copy's SHA-256, its tier and the store's ``primary_reads``;
- ``delete``: the DeleteResult; ``--when-file-in`` waits until a file appears in DIR
  first (another host's cache ``tmp/``: its fetch from the bucket has begun);
- ``delete-content``: deletes every file with that content, over and over, until the
  ``--stop`` file exists; counts what it deleted.

and ``{"event": "done", ...}`` last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _child import emit, run, sha256_of, wait_for_go

from filetier import FileStore, NotFoundError


async def wait_for_file_in(directory: str, timeout: float = 30.0) -> bool:
    """True once ``directory`` holds a file; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(directory) and os.listdir(directory):
            return True
        await asyncio.sleep(0.001)
    return False


async def upload(store: FileStore, args: argparse.Namespace) -> None:
    for _ in range(args.repeat):
        result = await store.upload_file(args.path)
        emit(
            {
                "event": "uploaded",
                "file_id": str(result.file_id),
                "sha256": result.sha256,
                "deduplicated": result.deduplicated,
                "bytes_written": result.bytes_written,
            }
        )
    emit({"event": "done"})


async def delete_content(store: FileStore, args: argparse.Namespace) -> None:
    deleted = blobs_deleted = 0
    while not os.path.exists(args.stop):
        page = await store.list(sha256=args.sha256, limit=1000)
        for record in page.items:
            try:
                result = await store.delete(record.file_id)
            except NotFoundError:
                continue
            deleted += 1
            blobs_deleted += result.blob_deleted
        if not page.items:
            await asyncio.sleep(0.002)
    emit({"event": "done", "deleted": deleted, "blobs_deleted": blobs_deleted})


async def main(args: argparse.Namespace) -> None:
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})
        await wait_for_go(args.go)
        if args.action == "upload":
            await upload(store, args)
        elif args.action == "delete-content":
            await delete_content(store, args)
        elif args.action == "delete":
            seen = await wait_for_file_in(args.when_file_in) if args.when_file_in else None
            result = await store.delete(args.file_id)
            emit({"event": "done", "blob_deleted": result.blob_deleted, "trigger_seen": seen})
        else:
            downloaded = await store.download(args.file_id, args.dest)
            emit(
                {
                    "event": "done",
                    "tier": downloaded.tier,
                    "sha256": sha256_of(downloaded.path),
                    "primary_reads": (await store.stats()).primary_reads,
                }
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("upload")
    up.add_argument("path")
    up.add_argument("--repeat", type=int, default=1)
    down = actions.add_parser("download")
    down.add_argument("file_id")
    down.add_argument("dest")
    remove = actions.add_parser("delete")
    remove.add_argument("file_id")
    remove.add_argument("--when-file-in")
    churn = actions.add_parser("delete-content")
    churn.add_argument("sha256")
    churn.add_argument("--stop", required=True)
    for sub in (up, down, remove, churn):
        sub.add_argument("--go")
    run(main(parser.parse_args()))
