"""With fsync on, no upload is acknowledged before its object and its row are on disk.

A power cut cannot be staged here, so the order is read off the kernel instead: a real
process uploads under ``strace`` and answers each upload as it returns; for every one,
between the link that published its object and the answer, the trace must show

- its object made durable: one ``syncfs`` of the objects' file system (a batch of
  uploads that arrived together, while the machine has little dirty data), or an fsync
  of the object and of its directory;
- its row's commit synced: an fsync or fdatasync of the SQLite WAL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

UPLOADER = """
import asyncio, os, sys
from filetier import FileStore, Settings

async def main() -> None:
    home, tasks, per_task = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    primary = {"primary_url": sys.argv[4]} if len(sys.argv) > 4 else {}
    async with FileStore(Settings(_env_file=None, home=home, fsync=True, **primary)) as store:
        async def uploads(task: int) -> None:
            for i in range(per_task):
                result = await store.upload_file(os.urandom(4096), filename=f"{task}-{i}.bin")
                os.write(1, f"ACK {result.sha256}\\n".encode())  # the acknowledgement
        await asyncio.gather(*(uploads(t) for t in range(tasks)))

asyncio.run(main())
"""

SYSCALL = re.compile(r"^(\d+)\s+(\w+)\((.*)$")
# A call another thread's call interrupted in the log: its start, then its end.
UNFINISHED = re.compile(r"^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
# link(temp, object) or linkat(dirfd, "/proc/self/fd/N", AT_FDCWD, object, flags)
PUBLISHED = re.compile(r'"[^"]*/objects/sha256/../../([0-9a-f]{64})"(?:, \w+)?\)\s+= 0$')
ACKED = re.compile(r'^1<[^>]*>, "ACK ([0-9a-f]{64})\\n"')
SYNCED_FD = re.compile(r"^\d+<([^>]*)>\)\s+= 0")


def run_traced(log: Path, syscalls: str, script: str, *args: str) -> None:
    """Run ``script`` in a new interpreter under strace (every thread, descriptors shown
    with their paths), the calls ``syscalls`` written to ``log``."""
    subprocess.run(
        [
            *("strace", "-f", "-qq", "-y", "-s", "200", "-e", f"trace={syscalls}"),
            *("-o", str(log), sys.executable, "-c", script, *args),
        ],
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )


def trace_uploads(
    tmp_path: Path, tasks: int, per_task: int, *primary_url: str
) -> list[tuple[str, str]]:
    """(syscall, arguments) of every traced call, in the order the kernel saw them."""
    log = tmp_path / "trace.log"
    os.sync()  # little dirty data: batches may take the one-syncfs path (durability.py)
    run_traced(
        log,
        "link,linkat,syncfs,fsync,fdatasync,write",
        UPLOADER,
        str(tmp_path / "home"),
        str(tasks),
        str(per_task),
        *primary_url,
    )
    calls = []
    started: dict[str, str] = {}  # thread -> arguments of its unfinished call
    for line in log.read_text().splitlines():
        if found := UNFINISHED.match(line):
            started[found.group(1)] = found.group(3)
        elif found := RESUMED.match(line):
            # Placed where it ended: a sync counts from its completion.
            calls.append((found.group(2), started.pop(found.group(1), "") + found.group(3)))
        elif found := SYSCALL.match(line):
            calls.append((found.group(2), found.group(3)))
    return calls


@pytest.mark.parametrize(
    ("tasks", "per_task"),
    [(16, 4), (1, 3)],
    ids=["batches-of-concurrent-uploads", "one-upload-at-a-time"],
)
def test_every_acknowledged_upload_was_synced_before_its_answer(
    tmp_path: Path, tasks: int, per_task: int
) -> None:
    calls = trace_uploads(tmp_path, tasks, per_task)
    objects_root = str((tmp_path / "home" / "objects").resolve())
    published: dict[str, int] = {}
    acknowledged: dict[str, int] = {}
    for index, (name, args) in enumerate(calls):
        if name in {"link", "linkat"} and (found := PUBLISHED.search(args)):
            published.setdefault(found.group(1), index)
        elif name == "write" and (found := ACKED.match(args)):
            acknowledged[found.group(1)] = index
    assert len(acknowledged) == tasks * per_task
    assert set(acknowledged) <= set(published)

    def synced(between: range) -> list[str]:
        paths = []
        for name, args in calls[between.start : between.stop]:
            if name in {"syncfs", "fsync", "fdatasync"} and (found := SYNCED_FD.match(args)):
                paths.append(f"{name} {found.group(1)}")
        return paths

    for sha256, answered in acknowledged.items():
        window = synced(range(published[sha256], answered))
        obj = f"{objects_root}/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"
        object_durable = f"syncfs {objects_root}" in window or (
            f"fsync {obj}" in window and f"fsync {Path(obj).parent}" in window
        )
        assert object_durable, f"{sha256[:12]} answered before its object was synced: {window}"
        wal = str((tmp_path / "home" / "filetier.db-wal").resolve())
        assert any(entry.endswith(wal) for entry in window), (
            f"{sha256[:12]} answered before its row's commit was synced: {window}"
        )


def test_a_file_url_primary_syncs_each_object_before_its_answer(tmp_path: Path) -> None:
    """``FILETIER_PRIMARY_URL=file://...`` is written by obstore, which syncs nothing: with
    fsync on, filetier syncs each object and the directories above it before the row
    commits, as for the embedded store."""
    root = (tmp_path / "objects").resolve()
    calls = trace_uploads(tmp_path, 4, 2, f"file://{root}")
    synced: set[str] = set()
    answered = 0
    for name, args in calls:
        if name in {"fsync", "fdatasync"} and (found := SYNCED_FD.match(args)):
            synced.add(found.group(1))
        elif name == "write" and (found := ACKED.match(args)):
            sha256 = found.group(1)
            obj = root / "sha256" / sha256[:2] / sha256[2:4] / sha256
            for path in (obj, obj.parent, obj.parent.parent, root / "sha256", root):
                assert str(path) in synced, f"{sha256[:12]} answered before {path} was synced"
            answered += 1
    assert answered == 8


DOWNLOADER = """
import asyncio, os, sys
from filetier import FileStore, Settings

async def main() -> None:
    home, out = sys.argv[1], sys.argv[2]
    settings = Settings(_env_file=None, home=home, fsync=True, allowed_roots=out)
    async with FileStore(settings) as store:
        for size in (100_000, 40 * 1024 * 1024):  # from memory, and copied file to file
            result = await store.upload_file(os.urandom(size), filename=f"{size}.bin")
            store.memory.clear()
            await store.download_file(result.file_id, os.path.join(out, f"{size}.bin"))

asyncio.run(main())
"""

# linkat(dirfd<dir>, ".name.hex.tmp", dirfd<dir>, "name", 0) or renameat2(...) of a temp
PUBLISHED_TEMP = re.compile(r'^\d+<([^>]*)>, "(\.[^"]+\.tmp)", \d+<[^>]*>, "([^"]+)"')


def test_a_delivered_file_is_synced_before_its_name_appears(tmp_path: Path) -> None:
    """With fsync on, a download's bytes are on disk before its final name is linked: a
    power cut after the answer leaves no final name on an empty or short file."""
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "trace.log"
    run_traced(log, "linkat,renameat,renameat2,fsync", DOWNLOADER, str(tmp_path / "home"), str(out))
    synced: set[str] = set()
    published: list[str] = []
    for line in log.read_text().splitlines():
        found = SYSCALL.match(line)
        if found is None:
            continue
        name, args = found.group(2), found.group(3)
        if name == "fsync" and (fd := SYNCED_FD.match(args)):
            synced.add(fd.group(1))
        elif (
            name in {"linkat", "renameat", "renameat2"}
            and args.rstrip().endswith("= 0")
            and (move := PUBLISHED_TEMP.match(args))
            and move.group(1) == str(out)
        ):
            temp = f"{move.group(1)}/{move.group(2)}"
            assert temp in synced, f"{move.group(3)} was published before its bytes synced"
            published.append(move.group(3))
    assert sorted(published) == sorted(["100000.bin", f"{40 * 1024 * 1024}.bin"])
