"""Upload small files from many tasks at once, for ever, reporting each acknowledgement.

    small_uploads_worker.py --seed N [--tasks 16] [--size 4096]

Prints ``{"event": "ready"}`` once the store is open, then one ``{"event": "uploaded",
"file_id": ..., "sha256": ...}`` as soon as each upload returns: its inserts ride in
group commits with the other tasks', so a kill lands between some batch's durability
work and its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random

from _child import emit, run

from filetier import FileStore


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    async with FileStore() as store:
        emit({"event": "ready", "pid": os.getpid()})

        async def uploader(task: int) -> None:
            for index in range(1_000_000):
                data = rng.randbytes(args.size)
                result = await store.upload_file(data, filename=f"t{task}-{index}.bin")
                emit({"event": "uploaded", "file_id": str(result.file_id), "sha256": result.sha256})

        await asyncio.gather(*(uploader(task) for task in range(args.tasks)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--size", type=int, default=4096)
    run(main(parser.parse_args()))
