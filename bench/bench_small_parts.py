"""Where the time of many small uploads goes: ``bench_core.py`` row 5 run again with parts
of filetier's path taken out, one at a time, beside ``diskcache.set`` in the same run.

Run::

    .venv/bin/python bench/bench_small_parts.py            # 1,000 uploads, 3 rounds
    .venv/bin/python bench/bench_small_parts.py --quick    # CI smoke run

Not a product path: the variants below stub filetier's own parts (in a child process
each, so nothing leaks from one to the next) to measure what each part costs, and what
the fastest path that keeps the rest could reach. Each round runs every variant once, in
an order rotated from round to round; the medians are compared.

- ``full``: ``store.upload_file(bytes)``, as row 5 (embedded default, fsync off).
- ``no content lock``: no per-content lock (its in-process stripe and ``flock``).
- ``no object file``: the object is not written (publish is a no-op). An upper bound for
  keeping small content in the metadata database instead of one file per object: that
  would still write its bytes into the row.
- ``no file, no lock``: neither. What content kept in the metadata database could reach
  if that database's own transactions ordered its uploads and deletes (so no content lock).
- ``no file, no lock, no row``: also no metadata insert; what is left is the asyncio and
  Python path itself (staging, hashing, type sniffing, the result).

The exit code is always 0: this is a report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _table import add, finish, scrub_environment

RESULTS = Path(__file__).resolve().parent / "results" / "small-parts.md"
SIZE = 4096
TASKS = 16

# Variant name -> the parts it takes out.
VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "no content lock": ("lock",),
    "no object file": ("file",),
    "no file, no lock": ("file", "lock"),
    "no file, no lock, no row": ("file", "lock", "row"),
}


def take_out(parts: tuple[str, ...]) -> None:
    """Stub the named parts of filetier in this (child) process."""
    if "file" in parts:
        from filetier.tiers.local import LocalPrimary

        LocalPrimary.publish_bytes = lambda self, key, data: True  # type: ignore[method-assign]
    if "lock" in parts:
        from filetier.content_locks import FileContentLocks

        @contextlib.asynccontextmanager
        async def hold(self: Any, key: str) -> AsyncIterator[bool]:
            yield True

        FileContentLocks.hold = hold  # type: ignore[method-assign]
    if "row" in parts:
        from filetier.metadata.repository import Repository

        async def no_rows(self: Any, requests: list[Any]) -> list[None]:
            return [None] * len(requests)

        Repository._insert_batch = no_rows  # type: ignore[method-assign]


async def time_uploads(home: Path, count: int, parts: tuple[str, ...]) -> float:
    take_out(parts)
    from filetier import FileStore, Settings

    values = [os.urandom(SIZE) for _ in range(count)]
    settings = Settings(_env_file=None, home=home, fsync=False)  # type: ignore[call-arg]
    async with FileStore(settings) as store:
        await store.upload_file(os.urandom(SIZE), filename="warm.bin")
        pending = iter(enumerate(values))

        async def worker() -> None:
            for i, value in pending:
                await store.upload_file(value, filename=f"small-{i}.bin")

        os.sync()
        await asyncio.sleep(0.5)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return time.perf_counter() - start


def time_diskcache(home: Path, count: int) -> float:
    import diskcache

    values = [os.urandom(SIZE) for _ in range(count)]
    with diskcache.Cache(str(home)) as cache:
        cache.set("warm", b"x")
        os.sync()
        time.sleep(0.5)
        start = time.perf_counter()
        for i, value in enumerate(values):
            cache.set(f"small-{i}", value)
        return time.perf_counter() - start


def child(name: str, home: Path, count: int) -> None:
    if name == "diskcache.set":
        seconds = time_diskcache(home, count)
    else:
        seconds = asyncio.run(time_uploads(home, count, VARIANTS[name]))
    print(f"seconds={seconds!r}", flush=True)
    os._exit(0)  # obstore may abort the interpreter at exit


def run_child(name: str, home: Path, count: int) -> float:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, "--home", str(home), "--count", str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("seconds="):
            return float(line.removeprefix("seconds="))
    raise RuntimeError(f"{name}: no timing (exit {proc.returncode}): {proc.stderr[-800:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    scrub_environment()
    count = args.count or (300 if args.quick else 1_000)
    if args.child:
        child(args.child, args.home, count)
    rounds = args.rounds or (1 if args.quick else 3)
    names = [*VARIANTS, "diskcache.set"]
    times: dict[str, list[float]] = {name: [] for name in names}
    # Homes are kept to the end: on a file system mounted with discard, deleting one
    # slows the creates that follow it (see bench_core.py).
    with tempfile.TemporaryDirectory(prefix="filetier-small-parts-") as work:
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                home = Path(work) / f"{r}-{names.index(name)}"
                try:
                    times[name].append(run_child(name, home, count))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"{name}: {exc}", file=sys.stderr)
                print(f"  round {r + 1}: {name}: {times[name][-1:]}", flush=True)
    baseline = count / statistics.median(times["diskcache.set"]) if times["diskcache.set"] else 0
    for name in VARIANTS:
        if not times[name] or not baseline:
            add(name, "**ERROR**", "-", "-", "-", "ERROR")
            continue
        rate = count / statistics.median(times[name])
        add(
            f"{count:,} uploads of 4 KiB, {TASKS} tasks, fsync off: {name}",
            f"{rate:,.0f} files/s",
            f"diskcache.set {baseline:,.0f} /s",
            f"{rate / baseline:.3f}x",
            "row 5: >= 0.5x (full path)",
            "info",
        )
    header = (
        f"# small uploads, part by part ({os.cpu_count()} CPUs, median of {rounds} rounds, "
        f"load average {os.getloadavg()[0]:.2f} at the end)\n\n"
    )
    finish(header, RESULTS)


if __name__ == "__main__":
    main()
