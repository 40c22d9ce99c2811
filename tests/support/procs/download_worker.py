"""Download one file and report what it cost.

    download_worker.py FILE_ID DEST [--go PATH]

Prints ``{"event": "ready"}`` once the store is open, waits for the ``--go`` file, then
downloads and prints ``{"event": "done", "primary_reads": n, "sha256": <of DEST>, ...}``.
"""

from __future__ import annotations

import argparse
import os
import time

from _child import emit, run, sha256_of, wait_for_go

from filetier import FileStore


async def main(args: argparse.Namespace) -> None:
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})
        await wait_for_go(args.go)
        started = time.perf_counter()
        result = await store.download(args.file_id, args.dest)
        seconds = time.perf_counter() - started
        stats = await store.stats()
        emit(
            {
                "event": "done",
                "pid": os.getpid(),
                "primary_reads": stats.primary_reads,
                "tier": result.tier,
                "sha256": sha256_of(result.path),
                "seconds": seconds,
            }
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("file_id")
    parser.add_argument("dest")
    parser.add_argument("--go")
    run(main(parser.parse_args()))
