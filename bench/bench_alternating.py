"""Large-file downloads timed in alternation with their baseline, ``os.sync()`` between.

Run::

    .venv/bin/python bench/bench_alternating.py                 # embedded, 1 GiB, 6 pairs
    .venv/bin/python bench/bench_alternating.py --s3 ceph       # PostgreSQL + Ceph, 256 MiB
    .venv/bin/python bench/bench_alternating.py --pairs 4 --size-mib 512

``bench_production.py`` times each contestant several times in a row and keeps the best
(except its download row); on a VM whose disk writeback stalls unpredictably, whichever
runs after a burst of writes pays for it. ``bench_core.py`` now times its large-file rows
this way too. Here each pair runs filetier and its baseline back to back,
the order swapped every other pair, with ``os.sync()`` and a pause before each timing, and
the table reports medians:

- ``embedded``: ``store.download`` from the local primary vs the one-pass copy+SHA-256 of
  the same object (``filetier.digest.copy_and_hash``), both into the same directory;
- ``ceph`` / ``moto``: ``store.download`` with memory and disk copies evicted (a primary
  read, verified, kept in the disk cache) vs ``obstore.get_async`` streamed to a file.

Needs, for the S3 modes, PostgreSQL on 127.0.0.1:5432 and the S3 server running
(``scripts/start-ceph-rgw.sh``). The exit code is always 0: this is a report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

MiB = 1 << 20


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(16 * MiB, left)
            out.write(os.urandom(n))
            left -= n


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    os.sync()
    await asyncio.sleep(0.5)
    began = time.perf_counter()
    await fn()
    return time.perf_counter() - began


async def alternate(
    pairs: int,
    contestants: dict[str, Callable[[], Awaitable[Any]]],
    before_each: Callable[[], None],
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for pair in range(pairs):
        for name in names if pair % 2 == 0 else reversed(names):
            before_each()
            samples[name].append(await timed(contestants[name]))
    return samples


async def embedded(work: Path, size: int, pairs: int) -> dict[str, list[float]]:
    from filetier import FileStore, Settings
    from filetier.digest import copy_and_hash

    source = work / "source.bin"
    write_random(source, size)
    out = work / "out"
    out.mkdir()
    settings = Settings(_env_file=None, home=work / "home", fsync=False, allowed_roots=str(out))  # type: ignore[call-arg]
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(source)
        source.unlink()
        obj = next((work / "home" / "objects").rglob(uploaded.sha256))

        async def filetier_download() -> None:
            # The same path every round: replacing it is the measured work.
            await store.download(uploaded.file_id, out / "filetier.bin", overwrite=True)

        async def copy_hash() -> None:
            fd = os.open(out / "baseline.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                await asyncio.to_thread(copy_and_hash, obj, fd)
            finally:
                os.close(fd)

        def clear() -> None:
            for path in out.iterdir():
                path.unlink()

        return await alternate(
            pairs,
            {"filetier download": filetier_download, "copy+SHA-256": copy_hash},
            clear,
        )


async def s3(kind: str, work: Path, size: int, pairs: int, url: str) -> dict[str, list[float]]:
    import bench_production as production
    from filetier import FileStore

    server, moto = production.choose_s3(kind)
    bucket = server.create_bucket()
    source = work / "source.bin"
    write_random(source, size)
    out = work / "out"
    out.mkdir()
    try:
        services = production.Services(database_url=url, s3=server, bucket=bucket)
        settings = production.production_settings(services, work / "home", roots=[out])
        async with FileStore(settings) as store:
            uploaded = await store.upload_file(source)
            record = await store.stat(uploaded.file_id)
            raw = production.raw_s3_store(services)

            async def filetier_download() -> None:
                # The same path every round: replacing it is the measured work.
                await store.download(uploaded.file_id, out / "filetier.bin", overwrite=True)

            async def raw_get() -> None:
                await production.raw_get_to_file(raw, record.storage_key, out / "raw.bin")

            def clear() -> None:
                store.memory.evict(uploaded.sha256)
                store.disk.evict(uploaded.sha256)
                for path in out.iterdir():
                    path.unlink()

            return await alternate(
                pairs, {"filetier download (primary)": filetier_download, "raw get": raw_get}, clear
            )
    finally:
        production.empty_bucket(server, bucket)
        if moto is not None:
            moto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_alternating", description=__doc__.split("\n")[0])
    parser.add_argument("--s3", choices=["none", "ceph", "moto"], default="none")
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    size = (args.size_mib or (1024 if args.s3 == "none" else 256)) * MiB
    work = Path(tempfile.mkdtemp(prefix="filetier-alt-"))
    try:
        if args.s3 == "none":
            samples = asyncio.run(embedded(work, size, args.pairs))
        else:
            from testbed.services import create_database, drop_database

            url = create_database()  # runs its own event loop: outside ours
            try:
                samples = asyncio.run(s3(args.s3, work, size, args.pairs, url))
            finally:
                drop_database(url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (first, a), (second, b) = samples.items()
    print(f"\n{size // MiB} MiB, {args.pairs} alternating pairs, os.sync() before each timing\n")
    print("| contestant | samples, s | median, s |")
    print("|---|---|---|")
    for name, values in samples.items():
        shown = " / ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {shown} | {statistics.median(values):.3f} |")
    ratio = statistics.median(b) / statistics.median(a)
    print(f"\nthroughput of {first} / {second}, by medians: {ratio:.2f}x")
    os._exit(0)  # obstore's runtime may abort the interpreter at exit otherwise


if __name__ == "__main__":
    main()
