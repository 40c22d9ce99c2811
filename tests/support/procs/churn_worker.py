"""Uploads, downloads, reads and deletes of small files, at random, until killed.

    churn_worker.py [--ops N] [--seed S]

Prints ``{"event": "ready", "files": n}`` once the store is open, then works without pause.
A few contents recur (so uploads deduplicate and deletes race their own re-uploads); the
rest are fresh. Without ``--ops`` it never ends on its own: the crash test kills it.
Any unexpected error ends it with a traceback and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

from _child import emit, run

from filetier import FileStore, Settings

SHARED_CONTENTS = 6
MAX_FILES = 40  # at this many files, uploads give way to reads: the store stays small


def shared_content(index: int) -> bytes:
    block = hashlib.sha256(f"churn-{index}".encode()).digest()
    return (block * 4096)[: 1024 * (1 + (index * 37) % 90)]


async def stream(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 16 * 1024):
        yield data[start : start + 16 * 1024]
        await asyncio.sleep(0)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed if args.seed is not None else os.getpid())
    out = Settings().allowed_roots[0]
    pid = os.getpid()
    async with FileStore() as store:
        files = [record.file_id for record in (await store.list(limit=1000)).items]
        emit({"event": "ready", "pid": pid, "files": len(files)})
        done = 0
        while args.ops is None or done < args.ops:
            done += 1
            roll = rng.random()
            if not files or (roll < 0.45 and len(files) < MAX_FILES):
                if rng.random() < 0.7:
                    data = shared_content(rng.randrange(SHARED_CONTENTS))
                else:
                    data = os.urandom(rng.randrange(1, 96 * 1024))
                how = rng.choice(("bytes", "path", "stream"))
                if how == "bytes":
                    result = await store.upload_file(data, filename="churn.bin")
                elif how == "path":
                    source = out / f"src-{pid}-{done}.bin"
                    source.write_bytes(data)
                    result = await store.upload_file(source)
                    source.unlink()
                else:
                    result = await store.upload_file(stream(data), filename="churn.bin")
                files.append(result.file_id)
            elif roll < 0.65:
                fid = rng.choice(files)
                # One path per worker, reused: replacing it each time is intended.
                path = await store.download_file(fid, Path(out) / f"dl-{pid}.bin", overwrite=True)
                record = await store.stat(fid)
                if hashlib.sha256(path.read_bytes()).hexdigest() != record.sha256:
                    raise AssertionError(f"downloaded bytes of {fid} do not match")
            elif roll < 0.75:
                fid = rng.choice(files)
                data = await store.read_bytes(fid)
                if hashlib.sha256(data).hexdigest() != (await store.stat(fid)).sha256:
                    raise AssertionError(f"read bytes of {fid} do not match")
            else:
                fid = files.pop(rng.randrange(len(files)))
                await store.delete(fid)
        emit({"event": "done", "ops": done, "files": len(files)})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int)
    parser.add_argument("--seed", type=int)
    run(main(parser.parse_args()))
