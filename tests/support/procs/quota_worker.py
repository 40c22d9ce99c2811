"""Upload fresh random files as one owner, reporting each as stored or refused.

    quota_worker.py --owner NAME --count N [--go PATH]

Prints ``{"event": "ready"}`` once the store is open, then, after the go file, one
``{"event": "uploaded"}`` or ``{"event": "refused"}`` per upload (QuotaExceededError).
The quota itself comes from the environment (``FILETIER_OWNER_QUOTA_FILES``).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from _child import emit, run, wait_for_go

from filetier import FileStore, QuotaExceededError


async def main(args: argparse.Namespace) -> None:
    async with FileStore() as root:
        store = root.as_owner(args.owner)
        emit({"event": "ready", "pid": os.getpid()})
        await wait_for_go(args.go)

        async def one(index: int) -> None:
            try:
                result = await store.upload_file(os.urandom(2048), filename=f"q{index}.bin")
            except QuotaExceededError:
                emit({"event": "refused"})
            else:
                emit({"event": "uploaded", "file_id": str(result.file_id)})

        await asyncio.gather(*(one(i) for i in range(args.count)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--owner", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--go")
    run(main(parser.parse_args()))
