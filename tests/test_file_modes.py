"""What filetier writes is its user's alone, whatever the umask of the process.

A real subprocess runs with ``umask 000`` (as many container entrypoints do), stores,
caches and delivers files, and every file and directory filetier created must have no
group or other permission bits: objects, the SQLite database and its -wal/-shm, the disk
cache, the downloads folder and deliveries elsewhere.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from filetier import FileStore, Settings

    os.umask(0)
    home, out, remote = (Path(p) for p in sys.argv[1:4])
    roots = os.pathsep.join([str(home / "downloads"), str(out)])

    async def main() -> None:
        local = Settings(home=home, fsync=False, allowed_roots=roots)
        async with FileStore(local) as store:
            up = await store.upload_file(os.urandom(50_000), filename="a.bin")
            await store.download_file(up.file_id)
            await store.download_file(up.file_id, out / "new" / "deeper" / "a.bin")
            # the database is open here: its -wal and -shm exist
            for suffix in ("-wal", "-shm"):
                assert (home / ("filetier.db" + suffix)).exists(), suffix
            report = [f"{p.lstat().st_mode & 0o777:o} {p}" for p in sorted(home.rglob("*"))]
        cached = Settings(
            home=home / "second",
            primary_url=f"file://{remote}",
            memory_item_max_bytes=0,
            fsync=False,
        )
        async with FileStore(cached) as store:
            up = await store.upload_file(os.urandom(20_000), filename="b.bin")
            await store.read_bytes(up.file_id)
        print("\\n".join(report))

    asyncio.run(main())
    """
)


def loose(path: Path) -> bool:
    return bool(stat.S_IMODE(path.lstat().st_mode) & 0o077)


def test_everything_filetier_creates_is_private_under_umask_000(tmp_path: Path) -> None:
    home, out, remote = tmp_path / "data" / "filetier", tmp_path / "out", tmp_path / "remote"
    out.mkdir(mode=0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FILETIER_")}

    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), str(out), str(remote)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=120,
    )

    assert ran.returncode == 0, ran.stderr
    created = [*sorted(home.rglob("*")), *sorted(out.rglob("*")), tmp_path / "data", home]
    names = {p.name for p in created}
    assert {"filetier.db", "objects", "downloads", "a.bin", "new", "deeper"} <= names
    assert any(p.parent.parent.name == "sha256" or "sha256" in p.parts for p in created), (
        "the disk cache was used"
    )
    assert [str(p) for p in created if loose(p)] == []
    # Modes seen while the database was open, -wal and -shm included.
    seen = dict(line.split(" ", 1)[::-1] for line in ran.stdout.splitlines())
    assert {str(home / "filetier.db-wal"), str(home / "filetier.db-shm")} <= set(seen)
    assert {path: mode for path, mode in seen.items() if int(mode, 8) & 0o077} == {}
