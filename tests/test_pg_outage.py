"""PostgreSQL going away and coming back, on a private server this module controls.

The machine's shared server (127.0.0.1:5432) is never touched: the fixture below runs
``initdb`` into a temp directory as the ``postgres`` OS user, starts the server on a free
port, and "crashes" it with ``pg_ctl stop -m immediate`` (no shutdown checkpoint; the
next start runs crash recovery), exactly as a killed database host would look.

The promises under test:

- with the database down, every operation that needs it fails within a bounded time
  with :class:`filetier.MetadataUnavailableError` ("metadata database unavailable"), and
  the CLI exits 11 with one line on stderr;
- a crash in the middle of concurrent uploads leaves at worst objects without rows
  (``orphan_object``, which ``gc`` removes), never a row without its object, and every
  upload that returned is stored intact;
- stores recover when the server comes back: a new one at once, an open one by its next
  operation (the pool pings connections before use).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from filetier import FileStore, MetadataUnavailableError, Settings, UploadResult
from filetier.store import storage_key
from testbed.services import S3Server, free_port

T = TypeVar("T")
MiB = 1024 * 1024
CLI = "from filetier.interfaces.cli.app import main; main()"
METADATA_UNAVAILABLE_EXIT = 11
# database_timeout_seconds is 2 below; an operation must give up well within this.
BOUND_SECONDS = 20.0


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of our own, run as the ``postgres`` OS user."""

    bindir: Path
    datadir: Path
    port: int

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def _pg_ctl(self, *args: str) -> None:
        done = self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args)
        if done.returncode != 0:
            log = self.datadir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {args[0]} failed: {done.stderr}{done.stdout}\n{tail}")

    def initdb(self) -> None:
        done = self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres"
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr}")

    @property
    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._pg_ctl("-o", options, "-l", str(self.datadir / "log"), "start", "-w", "-t", "60")

    def crash(self) -> None:
        """Stop without a shutdown checkpoint, as if the host had died."""
        self._pg_ctl("stop", "-m", "immediate", "-w")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast", "-w")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Every server process stopped (SIGSTOP): connections hang instead of failing,
        as they do when the database host stops answering."""
        postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(postmaster)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        pids = [postmaster, *map(int, children)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        name = f"ft_outage_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url(), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


def _find_bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivatePostgres]:
    bindir = _find_bindir()
    if shutil.which("runuser") is None or bindir is None:
        pytest.skip("needs runuser and PostgreSQL's initdb (/usr/lib/postgresql/*/bin)")
    try:
        postgres_user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("needs a postgres OS user to run a private PostgreSQL server")
    # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
    datadir = Path(tempfile.mkdtemp(prefix="filetier-pg-"))
    os.chown(datadir, postgres_user.pw_uid, postgres_user.pw_gid)
    server = PrivatePostgres(bindir, datadir, free_port())
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if server.running:
                server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def pg(private_server: PrivatePostgres) -> PrivatePostgres:
    """The private server, running (a test before may have left it crashed)."""
    if not private_server.running:
        private_server.start()
    return private_server


def outage_settings(home: Path, url: str, server: S3Server, bucket: str) -> Settings:
    options: dict[str, Any] = {
        "home": home,
        "database_url": url,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        "database_timeout_seconds": 2,
        **server.settings_overrides(bucket),
    }
    return Settings(**options)


async def fails_unavailable(operation: Awaitable[Any]) -> float:
    """Await ``operation``; it must raise MetadataUnavailableError in bounded time."""
    started = time.monotonic()
    with pytest.raises(MetadataUnavailableError) as excinfo:
        await operation
    elapsed = time.monotonic() - started
    assert "metadata database unavailable" in str(excinfo.value)
    assert elapsed < BOUND_SECONDS, elapsed
    return elapsed


async def rows(url: str) -> tuple[list[str], dict[str, str]]:
    """``file_hash`` of every file row; ``sha256 -> storage_key`` of every blob row."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        files = [
            r["file_hash"] for r in await conn.fetch("SELECT file_hash FROM filetier.file_metadata")
        ]
        blobs = {
            r["sha256"]: r["storage_key"]
            for r in await conn.fetch("SELECT sha256, storage_key FROM filetier.blobs")
        }
    finally:
        await conn.close()
    return files, blobs


async def at_most_one_failure(call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """``call()``'s result, allowing one MetadataUnavailableError first (a connection that
    died with the old server); returns the result and how many calls failed."""
    try:
        return await call(), 0
    except MetadataUnavailableError:
        return await call(), 1


# ------------------------------------------------------------------------ database down


async def test_database_down_operations_fail_fast_with_a_clear_error(
    tmp_path: Path, pg: PrivatePostgres, moto: S3Server
) -> None:
    url = await pg.create_database()
    bucket = moto.create_bucket()
    payload = os.urandom(MiB)
    async with FileStore(outage_settings(tmp_path / "a", url, moto, bucket)) as uploader:
        uploaded = await uploader.upload_file(payload, filename="before.bin")

    # Another host: it has seen neither the record nor the bytes of the file.
    store = FileStore(outage_settings(tmp_path / "b", url, moto, bucket))
    await store.start()
    try:
        # Connected (pooled connections the crash will kill), without caching the record.
        assert [r.file_id for r in (await store.list()).items] == [uploaded.file_id]
        pg.crash()
        timings = {
            "upload": await fails_unavailable(store.upload_file(b"during the outage")),
            "upload_path": await fails_unavailable(store.upload_file(_write(tmp_path, payload))),
            "stat": await fails_unavailable(store.stat(uploaded.file_id)),
            "download": await fails_unavailable(
                store.download(uploaded.file_id, tmp_path / "b" / "downloads" / "x.bin")
            ),
            "list": await fails_unavailable(store.list()),
        }
        assert not (tmp_path / "b" / "downloads" / "x.bin").exists()
        assert moto.object_keys(bucket) == [storage_key(uploaded.sha256)]  # nothing written

        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            FILETIER_HOME=str(tmp_path / "cli"),
            FILETIER_DATABASE_TIMEOUT_SECONDS="2",
            FILETIER_FSYNC="0",
            **moto.env(bucket),
        )
        started = time.monotonic()
        cli = subprocess.run(
            [sys.executable, "-c", CLI, "stat", str(uploaded.file_id), "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        timings["cli"] = time.monotonic() - started
        assert cli.returncode == METADATA_UNAVAILABLE_EXIT, cli.stderr
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1, cli.stderr
        # --json: the error is one JSON object on stderr.
        error = json.loads(lines[0])["error"]
        assert error["type"] == "MetadataUnavailableError", lines
        assert error["message"].startswith("metadata database unavailable"), lines
        assert error["exit_code"] == METADATA_UNAVAILABLE_EXIT
        assert cli.stdout == ""
        assert timings["cli"] < BOUND_SECONDS + 5
    finally:
        if not pg.running:
            pg.start()
        await store.close()
    print(f"seconds to fail: { {k: round(v, 2) for k, v in timings.items()} }")


@pytest.mark.slow
async def test_frozen_database_fails_within_the_bound_and_recovers(
    tmp_path: Path, pg: PrivatePostgres, moto: S3Server
) -> None:
    url = await pg.create_database()
    bucket = moto.create_bucket()
    # Connect and command timeouts derive from this: the bound below is what they make.
    settings = outage_settings(tmp_path / "host", url, moto, bucket).model_copy(
        update={"database_timeout_seconds": 1.0}
    )
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(os.urandom(64 * 1024), filename="f.bin")
        with pg.frozen():
            # A hung server, unlike a refused connection, is bounded only by the timeouts.
            timings = await asyncio.gather(
                fails_unavailable(store.stat(uploaded.file_id)),
                fails_unavailable(store.upload_file(b"while the database hangs")),
            )
        record, failed = await at_most_one_failure(lambda: store.stat(uploaded.file_id))
        assert record.sha256 == uploaded.sha256
        assert (await store.list()).total == 1
    print(f"seconds to fail while frozen: {[round(t, 1) for t in timings]}; failed after: {failed}")


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"source-{uuid.uuid4().hex[:8]}.bin"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------- crash mid-upload


@pytest.mark.slow
async def test_crash_during_concurrent_uploads_leaves_only_collectable_orphans(
    tmp_path: Path, pg: PrivatePostgres, moto: S3Server
) -> None:
    url = await pg.create_database()
    bucket = moto.create_bucket()
    settings = outage_settings(tmp_path / "uploader", url, moto, bucket)
    payloads = [os.urandom(MiB + i * 64 * 1024) for i in range(30)]
    returned: dict[int, UploadResult] = {}
    enough = asyncio.Event()
    gate = asyncio.Semaphore(5)

    async def upload(store: FileStore, index: int) -> UploadResult:
        async with gate:
            result = await store.upload_file(payloads[index], filename=f"u{index}.bin")
        returned[index] = result
        if len(returned) >= 10:
            enough.set()
        return result

    async with FileStore(settings) as store:
        tasks = [asyncio.create_task(upload(store, i)) for i in range(30)]
        await asyncio.wait_for(enough.wait(), timeout=60)
        crashed_at = time.monotonic()
        await asyncio.to_thread(pg.crash)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), timeout=120
        )
        settled = time.monotonic() - crashed_at
        await asyncio.to_thread(pg.start)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    unexpected = [o for o in failures if not isinstance(o, MetadataUnavailableError)]
    assert unexpected == [], [repr(o) for o in unexpected]
    assert failures, "every upload finished before the crash: nothing was tested"
    assert len(returned) + len(failures) == 30
    assert settled < BOUND_SECONDS + 10, settled

    # A new store (another host: nothing cached) on the restarted server.
    async with FileStore(outage_settings(tmp_path / "checker", url, moto, bucket)) as store:
        report = await store.verify()
        kinds = {finding.kind for finding in report.findings}
        assert kinds <= {"orphan_object"}, report.findings
        orphans = len(report.findings)

        files, blobs = await rows(url)
        keys = set(moto.object_keys(bucket))
        assert all(storage_key(sha) in keys for sha in files), "a file row lost its object"

        collected = await store.gc(grace_seconds=0)
        assert len(collected.actions) == orphans
        files, blobs = await rows(url)
        assert set(moto.object_keys(bucket)) == set(blobs.values())
        assert set(blobs) == set(files)
        assert (await store.verify()).findings == []

        for index, result in returned.items():
            record = await store.stat(result.file_id)
            assert record.sha256 == hashlib.sha256(payloads[index]).hexdigest()
            assert await store.read_bytes(result.file_id) == payloads[index]

        after = await store.upload_file(b"after the restart", filename="after.txt")
        assert await store.read_bytes(after.file_id) == b"after the restart"
    print(
        f"crash after {len(returned)} returned uploads: {len(failures)} failed, "
        f"{orphans} orphan objects collected, settled in {settled:.1f}s"
    )


# --------------------------------------------------------------- open store, restart


async def test_open_store_recovers_after_the_server_restarts(
    tmp_path: Path, pg: PrivatePostgres, moto: S3Server
) -> None:
    url = await pg.create_database()
    bucket = moto.create_bucket()
    settings = outage_settings(tmp_path / "host", url, moto, bucket).model_copy(
        update={"bookkeeping_flush_seconds": 3600.0}  # downloads stay pending until flush()
    )

    async def read_all(store: FileStore, results: tuple[UploadResult, ...]) -> list[str]:
        """Read each file from the bucket (caches emptied); the SHA-256s read."""
        store.memory.clear()
        for result in results:
            store.disk.evict(result.sha256)
        read = await asyncio.gather(*(store.read_bytes(r.file_id) for r in results))
        return [hashlib.sha256(data).hexdigest() for data in read]

    async with FileStore(settings) as store:
        # Several pooled connections, all of which the crash will kill.
        first = tuple(
            await asyncio.gather(
                *(store.upload_file(os.urandom(256 * 1024), filename=f"f{i}.bin") for i in range(6))
            )
        )
        assert await read_all(store, first) == [r.sha256 for r in first]  # six pending downloads

        pg.crash()
        await fails_unavailable(store.stat(first[0].file_id))
        await fails_unavailable(store.upload_file(b"while the database is down"))
        await fails_unavailable(store.flush())  # the pending downloads are kept
        pg.start()

        record, failed = await at_most_one_failure(lambda: store.stat(first[1].file_id))
        assert record.sha256 == first[1].sha256
        # Every other call succeeds, on however many (pre-pinged) pooled connections.
        again = tuple(
            await asyncio.gather(
                *(store.upload_file(os.urandom(256 * 1024), filename=f"g{i}.bin") for i in range(6))
            )
        )
        both = first + again
        assert await read_all(store, both) == [r.sha256 for r in both]
        await store.flush()
        stats = await store.stats()
        assert stats.files == 12
        assert stats.downloads == 18  # the six from before the crash were not lost
        assert len(await store.history(limit=100)) == 18
        assert (await store.verify()).findings == []
    print(f"failed calls after the restart: {failed}")
