"""Faults injected into a working store: each must end in a clear error or a successful
retry, within a bound, and never in corruption or a hang.

    python -m reliability.faults [--only s3,pg,disk,provider] [--rounds N] [--json-out F]

The faults:

- **S3** (:func:`s3_faults`): a fault-injecting proxy (``reliability/proxy.py``) in front
  of Ceph RGW (moto when Ceph does not take writes) answers 503 and 500, before and in
  the middle of a request body, drops requests mid-body, cuts responses mid-body, and
  goes down and comes back (every connection reset, the port refusing). A moto server of
  our own is stalled with SIGSTOP during uploads and uncached reads, and SIGKILLed in the
  middle of an upload.
- **PostgreSQL** (:func:`pg_restart_under_load`): a private server (``initdb`` as the
  ``postgres`` OS user on a free port; the machine's server is never touched) is crashed
  with ``pg_ctl stop -m immediate`` and started again while four tasks upload, download
  and delete.
- **Disk** (:func:`disk_full`): ``FILETIER_HOME`` on a 32 MiB tmpfs of our own, filled by
  uploads with the free-space reserve on, and with it off (real ENOSPC).
- **Provider** (:func:`provider_faults`): the loopback provider answers 429 (with and
  without ``Retry-After``), 503, and answers too slowly.

After each fault the store is checked: every file acknowledged before or during it reads
back intact from the primary, ``verify()`` finds nothing but orphans a failed write may
leave, one ``gc(grace_seconds=0)`` leaves the objects exactly the blob rows, and a new
upload round-trips. Every wait is bounded by ``asyncio.wait_for``; a scenario that needs
longer is recorded as a hang.
"""

# ruff: noqa: S311 - the timings of injected faults are random by design, not secrets

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from filetier import (
    FileStore,
    FiletierError,
    InsufficientSpaceError,
    MetadataUnavailableError,
    Settings,
    StorageRefusedError,
    StorageUnavailableError,
)
from filetier.errors import (
    ProviderRateLimitedError,
    ProviderTimeoutError,
)
from reliability.backends import s3_server
from reliability.proxy import FaultProxy

T = TypeVar("T")
KiB = 1024
MiB = 1024 * 1024


@dataclass
class Outcome:
    """One injected fault and what came of it."""

    fault: str
    target: str
    expected: str
    outcome: str = ""
    elapsed_s: float = 0.0
    bound_s: float = 0.0
    ok: bool = False
    detail: str = ""


@dataclass
class FaultLog:
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    progress: Callable[[str], None] | None = None

    def add(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        if self.progress:
            mark = "ok  " if outcome.ok else "FAIL"
            self.progress(
                f"{mark} {outcome.target}: {outcome.fault} -> {outcome.outcome} "
                f"({outcome.elapsed_s:.2f} s, bound {outcome.bound_s:g} s) {outcome.detail}"
            )
        return outcome

    def problem(self, text: str) -> None:
        self.problems.append(text)
        if self.progress:
            self.progress(f"PROBLEM {text}")


async def expect(
    log: FaultLog,
    fault: str,
    target: str,
    call: Callable[[], Awaitable[T]],
    *,
    expected: str,
    errors: tuple[type[BaseException], ...] = (),
    bound: float,
    success_ok: bool = True,
    min_elapsed: float = 0.0,
    evidence: Callable[[Outcome], None] | None = None,
) -> tuple[Outcome, T | None]:
    """Run ``call`` under a hard bound; it must succeed (if ``success_ok``) or raise one
    of ``errors``, in less than ``bound`` seconds."""
    outcome = Outcome(fault, target, expected, bound_s=bound)
    started = time.monotonic()
    result: T | None = None
    try:
        result = await asyncio.wait_for(call(), timeout=bound * 2 + 10)
        outcome.outcome = "succeeded"
        outcome.ok = success_ok
    except errors as exc:  # before TimeoutError: ProviderTimeoutError is one
        outcome.outcome = type(exc).__name__
        outcome.detail = str(exc)[:200]
        outcome.ok = True
    except TimeoutError:
        outcome.outcome = "HUNG"
    except Exception as exc:  # noqa: BLE001 - an unexpected error is the finding
        outcome.outcome = f"unexpected {type(exc).__name__}"
        outcome.detail = str(exc)[:300]
    outcome.elapsed_s = round(time.monotonic() - started, 3)
    if outcome.elapsed_s > bound:
        outcome.ok = False
        outcome.detail = (outcome.detail + f" (took longer than the {bound:g} s bound)").strip()
    if outcome.outcome == "succeeded" and outcome.elapsed_s < min_elapsed:
        outcome.ok = False
        outcome.detail = f"finished in {outcome.elapsed_s:.2f} s: the fault was not honoured"
    if evidence is not None:
        evidence(outcome)
    log.add(outcome)
    return outcome, result


def proxy_evidence(proxy: FaultProxy, wanted: str) -> Callable[[Outcome], None]:
    """What the proxy did during one call, in the outcome's detail; the outcome fails if
    no request was treated as ``wanted`` (``answered``, ``dropped``, ``cut``)."""
    mark = len(proxy.log)

    def note(outcome: Outcome) -> None:
        seen = Counter(entry[2].split(" ")[0] for entry in proxy.log[mark:])
        summary = ", ".join(f"{kind} x{n}" for kind, n in sorted(seen.items()))
        outcome.detail = f"{outcome.detail} [proxy: {summary}]".strip()
        if wanted and not seen.get(wanted):
            outcome.ok = False
            outcome.detail += f" (no request was {wanted}: the fault was not injected)"

    return note


# ------------------------------------------------------------------------ consistency


@dataclass
class Known:
    """Files acknowledged so far: file id -> SHA-256."""

    files: dict[str, str] = field(default_factory=dict)

    def add(self, file_id: object, sha256: str) -> None:
        self.files[str(file_id)] = sha256


async def check_consistent(
    store: FileStore, known: Known, log: FaultLog, where: str, *, collect: bool = True
) -> None:
    """Every acknowledged file reads intact from the primary; verify finds no damage;
    one gc leaves objects == blob rows; a round trip works."""
    report = await store.verify()
    damage = [f for f in report.findings if f.kind not in ("orphan_object", "orphan_blob_row")]
    for finding in damage:
        log.problem(f"{where}: verify found {finding.kind}: {finding.detail}")
    for fid, sha256 in known.files.items():
        store.memory.evict(sha256)
        store.disk.evict(sha256)
        try:
            data = await asyncio.wait_for(store.read_bytes(fid), 60)
        except (FiletierError, TimeoutError) as exc:
            log.problem(f"{where}: acknowledged file {fid} unreadable: {type(exc).__name__}: {exc}")
            continue
        if hashlib.sha256(data).hexdigest() != sha256:
            log.problem(f"{where}: acknowledged file {fid} has other bytes")
    if collect:
        await store.gc(grace_seconds=0)
        blobs = await store.repo.all_blobs()
        keys = set()
        async for info in store.primary.list_objects("sha256/"):
            keys.add(info.key)
        if keys != {b.storage_key for b in blobs}:
            log.problem(f"{where}: after gc objects != blob rows ({len(keys)} vs {len(blobs)})")
    data = os.urandom(4 * KiB)
    up = await store.upload_file(data, filename="after-fault.bin")
    if await store.read_bytes(up.file_id) != data:
        log.problem(f"{where}: round trip after the fault returned other bytes")
    await store.delete(up.file_id)


async def _upload(store: FileStore, known: Known, data: bytes, name: str) -> None:
    result = await store.upload_file(data, filename=name)
    known.add(result.file_id, result.sha256)


# ------------------------------------------------------------------------------ S3


def _s3_settings(home: Path, server: Any, bucket: str, endpoint: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        **server.settings_overrides(bucket),
        "s3_endpoint": endpoint,
        "storage_retry_attempts": 3,
        "storage_retry_timeout_seconds": 8,
        "storage_timeout_seconds": 3,
        "storage_connect_timeout_seconds": 1,
        "memory_item_max_bytes": 64 * KiB,  # reads below go to the disk cache or S3
    }
    values.update(extra)
    return Settings(**values)


async def s3_proxy_faults(
    root: Path, log: FaultLog, rounds: int, rng: random.Random, *, short: bool = False
) -> str:
    """503/500 (before and mid-body), dropped requests, cut responses, an endpoint that
    dies and returns: through the proxy, in front of Ceph (or moto)."""
    from testbed.services import create_database, drop_database

    server, moto, why = s3_server(prefer_ceph=True)
    target = f"S3 via proxy -> {server.name}" + (f" ({why})" if why else "")
    bucket = server.create_bucket()
    url = await asyncio.to_thread(create_database)
    proxy = FaultProxy(server.endpoint).start()
    try:
        settings = _s3_settings(root / "s3-proxy", server, bucket, proxy.url, database_url=url)
        known = Known()
        async with FileStore(settings) as store:
            for i in range(4):
                await _upload(store, known, os.urandom(rng.randint(64 * KiB, 2 * MiB)), f"pre{i}")
            for round_ in range(rounds):
                await _s3_proxy_round(store, proxy, known, log, target, round_, rng, short)
            await check_consistent(store, known, log, target)
    finally:
        proxy.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(drop_database, url)
        _empty_bucket(server, bucket)
        if moto is not None:
            moto.stop()
    return target


async def _s3_proxy_round(
    store: FileStore,
    proxy: FaultProxy,
    known: Known,
    log: FaultLog,
    target: str,
    round_: int,
    rng: random.Random,
    short: bool,
) -> None:
    """Every proxy fault once; ``short``: one retried and one refused of each kind."""
    size = rng.randint(512 * KiB, 3 * MiB)
    total_before = (await store.list()).total

    async def upload() -> None:
        await _upload(store, known, os.urandom(size), f"r{round_}.bin")

    # Retried: fewer failures than the store's 3 attempts.
    for status in (503, 500):
        if not short:
            proxy.fail_next(1, status, method="PUT")
            await expect(
                log,
                f"PUT answered {status}",
                target,
                upload,
                expected="retried, stored",
                bound=10,
                evidence=proxy_evidence(proxy, "answered"),
            )
        if short and status == 500:
            continue
        proxy.fail_next(1, status, method="PUT", after_body=rng.randint(1, size // 2))
        await expect(
            log,
            f"PUT answered {status} mid-body",
            target,
            upload,
            expected="retried, stored",
            bound=10,
            evidence=proxy_evidence(proxy, "answered"),
        )
    if not short:
        proxy.drop_next(1, method="PUT", after_body=rng.randint(1, size // 2))
        await expect(
            log,
            "PUT connection dropped mid-body",
            target,
            upload,
            expected="retried, stored",
            bound=10,
            evidence=proxy_evidence(proxy, "dropped"),
        )

    # Not retried into success: more failures than attempts -> a clear error, no row.
    proxy.fail_next(10, 503, method="PUT")
    before = (await store.list()).total
    await expect(
        log,
        "PUT answered 503 on every attempt",
        target,
        upload,
        expected="StorageUnavailableError",
        errors=(StorageUnavailableError,),
        success_ok=False,
        bound=12,
        evidence=proxy_evidence(proxy, "answered"),
    )
    proxy.clear()
    if (await store.list()).total != before:
        log.problem(f"{target}: a refused upload left a file row")

    # Reads of uncached content: a 503 is retried by the client; a cut body is refused
    # and nothing partial is cached.
    fid, sha256 = rng.choice(list(known.files.items()))

    async def read_uncached() -> None:
        store.memory.evict(sha256)
        store.disk.evict(sha256)
        data = await store.read_bytes(fid)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise AssertionError("read returned bytes that do not verify")

    if not short:
        proxy.fail_next(1, 503, method="GET")
        await expect(
            log,
            "GET answered 503",
            target,
            read_uncached,
            expected="retried, read",
            bound=10,
            evidence=proxy_evidence(proxy, "answered"),
        )
        proxy.fail_next(20, 503, method="GET")
        await expect(
            log,
            "GET answered 503 on every attempt",
            target,
            read_uncached,
            expected="StorageUnavailableError",
            errors=(StorageUnavailableError,),
            success_ok=False,
            bound=15,
            evidence=proxy_evidence(proxy, "answered"),
        )
    proxy.clear()
    proxy.cut_next(1, method="GET", after_bytes=rng.randint(0, 32 * KiB))
    await expect(
        log,
        "GET response cut mid-body",
        target,
        read_uncached,
        expected="StorageUnavailableError or retried",
        errors=(StorageUnavailableError,),
        bound=15,
        evidence=proxy_evidence(proxy, "cut"),
    )
    proxy.clear()
    cached = store.disk.lookup(sha256)
    if cached is not None and hashlib.sha256(cached.read_bytes()).hexdigest() != sha256:
        log.problem(f"{target}: a cut response left a partial disk-cache copy")
    if list(store.disk.tmp.glob("*.tmp")):
        log.problem(f"{target}: a failed read left a temp file in the disk cache")

    # The endpoint dies mid-upload (connections reset, port refusing), then returns. The
    # PUT is held at the proxy so that the reset lands inside it.
    proxy.delay_next(1, 2.0, method="PUT")
    task = asyncio.create_task(upload())
    await asyncio.sleep(rng.uniform(0.2, 0.4))
    proxy.go_down()
    await expect(
        log,
        "endpoint down mid-upload",
        target,
        lambda: task,
        expected="StorageUnavailableError",
        errors=(StorageUnavailableError,),
        success_ok=False,
        bound=15,
    )
    proxy.clear()
    proxy.come_back()
    await expect(log, "endpoint back", target, upload, expected="stored", bound=10)
    if (await store.list()).total < total_before:
        log.problem(f"{target}: files disappeared during round {round_}")
    await check_consistent(store, known, log, f"{target} round {round_}", collect=False)


def _empty_bucket(server: Any, bucket: str) -> None:
    with contextlib.suppress(Exception):
        client = server.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


async def s3_process_faults(
    root: Path, log: FaultLog, rounds: int, rng: random.Random, *, short: bool = False
) -> str:
    """A moto server of our own, stalled with SIGSTOP and killed with SIGKILL."""
    from testbed.services import MotoProcess, create_database, drop_database

    target = "S3 server process (private moto)"
    moto = MotoProcess().start()
    url = await asyncio.to_thread(create_database)
    try:
        server = moto.server()
        bucket = server.create_bucket()
        settings = _s3_settings(
            root / "s3-moto",
            server,
            bucket,
            server.endpoint,
            database_url=url,
            storage_retry_attempts=2,
            storage_retry_timeout_seconds=6,
            storage_timeout_seconds=2,
        )
        known = Known()
        pid = moto.proc.pid
        async with FileStore(settings) as store:
            for i in range(3):
                await _upload(store, known, os.urandom(rng.randint(128 * KiB, 1 * MiB)), f"p{i}")
            for round_ in range(rounds):
                (fid, sha256), (cached_fid, cached_sha) = rng.sample(list(known.files.items()), 2)
                store.memory.evict(cached_sha)
                await store.read_bytes(cached_fid)  # now in the disk cache
                store.memory.evict(cached_sha)

                async def upload(n: int = round_) -> None:
                    await _upload(
                        store, known, os.urandom(rng.randint(256 * KiB, 4 * MiB)), f"s{n}"
                    )

                async def read_uncached(f: str = fid, s: str = sha256) -> None:
                    store.memory.evict(s)
                    store.disk.evict(s)
                    await store.read_bytes(f)

                async def read_cached(f: str = cached_fid, s: str = cached_sha) -> None:
                    data = await store.read_bytes(f)
                    if hashlib.sha256(data).hexdigest() != s:
                        raise AssertionError("cached read returned other bytes")

                task = asyncio.create_task(
                    store.upload_file(os.urandom(8 * MiB), filename=f"big{round_}.bin")
                )
                await asyncio.sleep(rng.uniform(0, 0.02))
                os.kill(pid, signal.SIGSTOP)
                try:
                    if short:
                        task.cancel()  # the short run stalls one plain upload only
                        with contextlib.suppress(asyncio.CancelledError, FiletierError):
                            await task
                    if not short:
                        _outcome, result = await expect(
                            log,
                            "server stalled (SIGSTOP) mid-upload",
                            target,
                            lambda t=task: t,
                            expected="StorageUnavailableError, or stored if it finished first",
                            errors=(StorageUnavailableError,),
                            bound=15,
                        )
                        if result is not None:
                            known.add(result.file_id, result.sha256)
                    await expect(
                        log,
                        "server stalled: upload",
                        target,
                        upload,
                        expected="StorageUnavailableError",
                        errors=(StorageUnavailableError,),
                        success_ok=False,
                        bound=15,
                    )
                    if not short:
                        await expect(
                            log,
                            "server stalled: uncached read",
                            target,
                            read_uncached,
                            expected="StorageUnavailableError",
                            errors=(StorageUnavailableError,),
                            success_ok=False,
                            bound=15,
                        )
                    await expect(
                        log,
                        "server stalled: cached read",
                        target,
                        read_cached,
                        expected="served from the disk cache",
                        bound=2,
                    )
                finally:
                    os.kill(pid, signal.SIGCONT)
                await expect(
                    log, "server resumed (SIGCONT)", target, upload, expected="stored", bound=10
                )
                await check_consistent(store, known, log, f"{target} stall {round_}", collect=False)
            await check_consistent(store, known, log, target)
            if short:
                return target

            # Killed mid-upload: a clear error and no row; moto restarts empty (it keeps
            # nothing on disk), so afterwards the store must say the bucket is gone, and
            # work again once it exists.
            before = (await store.list()).total
            task = asyncio.create_task(
                store.upload_file(os.urandom(8 * MiB), filename="killed.bin")
            )
            await asyncio.sleep(rng.uniform(0.005, 0.05))
            moto.stop()
            await expect(
                log,
                "server killed (SIGKILL) mid-upload",
                target,
                lambda: task,
                expected="StorageUnavailableError",
                errors=(StorageUnavailableError,),
                bound=15,
            )
            if task.done() and not task.cancelled() and task.exception() is None:
                known.add(task.result().file_id, task.result().sha256)
            elif (await store.list()).total != before:
                log.problem(f"{target}: the killed upload left a file row")
            moto.start()
            await expect(
                log,
                "server restarted empty",
                target,
                lambda: store.upload_file(b"bucket gone", filename="x.bin"),
                expected="StorageRefusedError (bucket does not exist; not retried)",
                errors=(StorageRefusedError,),
                success_ok=False,
                bound=5,
            )
            server.client().create_bucket(Bucket=bucket)

            async def round_trip() -> None:
                data = os.urandom(64 * KiB)
                up = await store.upload_file(data, filename="after-restart.bin")
                if await store.read_bytes(up.file_id) != data:
                    raise AssertionError("round trip after restart returned other bytes")

            await expect(log, "bucket recreated", target, round_trip, expected="stored", bound=10)
    finally:
        moto.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(drop_database, url)
    return target


# ---------------------------------------------------------------------- PostgreSQL


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of our own, run as the ``postgres`` OS user on a free port."""

    bindir: Path
    datadir: Path
    port: int

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PrivatePostgres]:
        from testbed.services import free_port

        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"),
            key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        )
        if not found or shutil.which("runuser") is None:
            raise RuntimeError("needs runuser and /usr/lib/postgresql/*/bin/initdb")
        user = pwd.getpwnam("postgres")
        # Not under a private temp dir: the postgres user must be able to reach it.
        datadir = Path(tempfile.mkdtemp(prefix="filetier-rel-pg-"))
        os.chown(datadir, user.pw_uid, user.pw_gid)
        server = cls(found[-1].parent, datadir, free_port())
        try:
            server._as_postgres("initdb", "-D", str(datadir), "-A", "trust", "-U", "postgres")
            server.start()
            yield server
        finally:
            with contextlib.suppress(Exception):
                server._as_postgres("pg_ctl", "-D", str(datadir), "stop", "-m", "immediate", "-w")
            shutil.rmtree(datadir, ignore_errors=True)

    def _as_postgres(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args[:3])} failed: {done.stderr}{done.stdout}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._as_postgres(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.datadir / "log"),
            "start",
            "-w",
            "-t",
            "60",
        )

    def crash(self) -> None:
        """Stop without a shutdown checkpoint, as if the host died (crash recovery next)."""
        self._as_postgres("pg_ctl", "-D", str(self.datadir), "stop", "-m", "immediate", "-w")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        import asyncpg

        name = f"ft_rel_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url(), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


async def pg_restart_under_load(
    root: Path,
    log: FaultLog,
    rounds: int,
    rng: random.Random,
    *,
    short: bool = False,
    workers: int = 4,
) -> str:
    """Crash and restart a private PostgreSQL ``rounds`` times while ``workers`` tasks
    upload, download and delete; every failure must be MetadataUnavailableError, within
    the bound, and the store must recover by itself."""
    server, moto, why = s3_server(prefer_ceph=True)
    target = f"PostgreSQL (private) + {server.name}" + (f" ({why})" if why else "")
    bucket = server.create_bucket()
    bound = 20.0  # database_timeout_seconds=2: connect + command timeouts derive from it
    try:
        with PrivatePostgres.running() as pg:
            url = await pg.create_database()
            settings = _s3_settings(
                root / "pg",
                server,
                bucket,
                server.endpoint,
                database_url=url,
                database_timeout_seconds=2,
            )
            known = Known()
            deleted: set[str] = set()
            async with FileStore(settings) as store:
                for round_ in range(rounds):
                    stats = await _load_with_restart(store, pg, known, deleted, rng, workers, bound)
                    slow = [s for s in stats["failure_seconds"] if s > bound]
                    ok = (
                        not stats["unexpected"]
                        and not slow
                        and stats["failed"] > 0
                        and stats["recovered_s"] is not None
                        and stats["recovered_s"] < bound
                    )
                    log.add(
                        Outcome(
                            "crash (pg_ctl stop -m immediate) and restart under load",
                            target,
                            "MetadataUnavailableError while down, then recovery",
                            outcome=(
                                f"{stats['ok']} ops ok, {stats['failed']} MetadataUnavailableError, "
                                f"{len(stats['unexpected'])} unexpected; first success "
                                f"{stats['recovered_s']} s after the restart"
                            ),
                            elapsed_s=round(max(stats["failure_seconds"], default=0.0), 3),
                            bound_s=bound,
                            ok=ok,
                            detail="; ".join(stats["unexpected"][:3])
                            + (f" slow failures: {slow[:3]}" if slow else "")
                            + ("" if stats["failed"] else " no operation failed: nothing tested"),
                        )
                    )
                    for fid in deleted:
                        known.files.pop(fid, None)
                    await check_consistent(store, known, log, f"{target} restart {round_}")
    finally:
        _empty_bucket(server, bucket)
        if moto is not None:
            moto.stop()
    return target


async def _load_with_restart(
    store: FileStore,
    pg: PrivatePostgres,
    known: Known,
    deleted: set[str],
    rng: random.Random,
    workers: int,
    bound: float,
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "ok": 0,
        "failed": 0,
        "unexpected": [],
        "failure_seconds": [],
        "recovered_s": None,
    }
    stop = asyncio.Event()
    recovered = asyncio.Event()
    restarted_at: list[float] = []

    async def worker(w: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            live = [f for f in known.files if f not in deleted]
            roll = rng.random()
            try:
                if roll < 0.5 or not live:
                    data = os.urandom(rng.randint(16 * KiB, 512 * KiB))
                    result = await store.upload_file(data, filename=f"load-{w}-{n}.bin")
                    known.add(result.file_id, result.sha256)
                elif roll < 0.85:
                    fid = rng.choice(live)
                    data = await store.read_bytes(fid)
                    if hashlib.sha256(data).hexdigest() != known.files[fid]:
                        stats["unexpected"].append(f"read of {fid} returned other bytes")
                else:
                    fid = rng.choice(live)
                    deleted.add(fid)  # a delete that fails may still have committed
                    await store.delete(fid)
                stats["ok"] += 1
                if restarted_at and stats["recovered_s"] is None:
                    stats["recovered_s"] = round(time.monotonic() - restarted_at[0], 3)
                    recovered.set()
            except MetadataUnavailableError:
                stats["failed"] += 1
                stats["failure_seconds"].append(time.monotonic() - started)
                await asyncio.sleep(0.05)
            except FiletierError as exc:
                stats["unexpected"].append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
    try:
        await asyncio.sleep(rng.uniform(1.0, 2.0))
        await asyncio.to_thread(pg.crash)
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        await asyncio.to_thread(pg.start)
        restarted_at.append(time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recovered.wait(), bound)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        _done, pending = await asyncio.wait(tasks, timeout=bound * 2)
        for task in pending:
            task.cancel()
            stats["unexpected"].append("a worker hung after the restart")
    return stats


# ---------------------------------------------------------------------------- disk


@contextlib.contextmanager
def small_filesystem(directory: Path, size_mib: int = 32) -> Iterator[str]:
    """A tmpfs of ``size_mib`` at ``directory`` (a loop-mounted ext4 image if tmpfs
    mounts are not permitted); yields what was mounted."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    kind = f"tmpfs size={size_mib}m"
    image = None
    if done.returncode != 0:
        image = directory.with_suffix(".img")
        with image.open("wb") as handle:
            handle.truncate(size_mib * MiB)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        subprocess.run(
            ["mount", "-o", "loop", str(image), str(directory)], check=True, capture_output=True
        )
        kind = f"loop-mounted ext4 image of {size_mib} MiB"
    try:
        yield kind
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)
        if image is not None:
            image.unlink(missing_ok=True)


async def disk_full(
    root: Path, log: FaultLog, rounds: int, rng: random.Random, *, short: bool = False
) -> str:
    target = "disk"
    for round_ in range(rounds):
        for reserve in (0,) if short else (4 * MiB, 0):
            mount = root / f"disk-{round_}-{reserve}"
            with small_filesystem(mount) as kind:
                target = f"FILETIER_HOME on a {kind}"
                await _fill_disk(mount, root / f"src-{round_}", reserve, log, target, rng)
    return target


async def _fill_disk(
    home: Path, scratch: Path, reserve: int, log: FaultLog, target: str, rng: random.Random
) -> None:
    """Upload until the filesystem is full; then free space the way an operator would
    (a ballast file of someone else's is removed) and check the store works again."""
    scratch.mkdir(parents=True, exist_ok=True)
    ballast = home / "ballast.bin"
    ballast.write_bytes(b"\0" * (6 * MiB))
    settings = Settings(
        home=home,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        min_free_bytes=reserve,
        memory_item_max_bytes=0,
    )
    label = f"reserve {reserve // MiB} MiB" if reserve else "reserve off (real ENOSPC)"
    known = Known()
    refusals: list[str] = []
    unexpected: list[str] = []
    stored = 0
    started = time.monotonic()
    async with FileStore(settings) as store:
        for attempt in range(80):
            size = rng.randint(256 * KiB, 3 * MiB)
            data = os.urandom(size)
            kind = ("bytes", "path", "stream")[attempt % 3]
            try:
                if kind == "bytes":
                    result = await asyncio.wait_for(store.upload_file(data, filename="f.bin"), 30)
                elif kind == "path":
                    source = scratch / "source.bin"
                    source.write_bytes(data)
                    result = await asyncio.wait_for(store.upload_file(source), 30)
                else:
                    result = await asyncio.wait_for(
                        store.upload_file(_chunks(data), filename="s.bin"), 30
                    )
                known.add(result.file_id, result.sha256)
                stored += size
            except InsufficientSpaceError as exc:
                refusals.append(f"{kind}: {exc}"[:160])
                if len(refusals) >= 9:
                    break
            except (FiletierError, TimeoutError) as exc:
                unexpected.append(f"{kind} upload: {type(exc).__name__}: {exc}"[:240])
                if len(unexpected) >= 3:
                    break
        # A download into the full disk is refused too, and leaves nothing behind.
        downloads = settings.downloads_dir
        if known.files:
            fid = next(iter(known.files))
            try:
                await asyncio.wait_for(store.download_file(fid), 30)
            except InsufficientSpaceError as exc:
                refusals.append(f"download: {exc}"[:160])
            except (FiletierError, TimeoutError) as exc:
                unexpected.append(f"download: {type(exc).__name__}: {exc}"[:240])
        temps = list((home / "objects" / ".staging").glob("*.tmp"))
        partial = list(downloads.rglob(".*.tmp")) if downloads.exists() else []
        elapsed = time.monotonic() - started
        log.add(
            Outcome(
                f"upload until full ({label})",
                target,
                "every refusal InsufficientSpaceError",
                outcome=(
                    f"{len(known.files)} files ({stored / MiB:.1f} MiB) stored, "
                    f"{len(refusals)} InsufficientSpaceError, {len(unexpected)} other errors"
                ),
                elapsed_s=round(elapsed, 3),
                bound_s=60,
                ok=bool(refusals) and not unexpected and not temps and not partial and elapsed < 60,
                detail="; ".join(unexpected[:3])
                + (f" temp files left: {len(temps)}" if temps else "")
                + (f" partial downloads left: {len(partial)}" if partial else ""),
            )
        )
        # Now fill the last byte (someone else's file), as a full disk really is.
        filler = home / "filler.bin"
        _fill_completely(filler)
        if known.files:
            # Content already stored costs only a row: the database must grow.
            again = await store.read_bytes(next(iter(known.files)))

            async def dedup_upload() -> None:
                result = await store.upload_file(again, filename="again.bin")
                known.add(result.file_id, result.sha256)

            await expect(
                log,
                f"upload of stored content on the full disk ({label})",
                target,
                dedup_upload,
                expected="stored, or InsufficientSpaceError",
                errors=(InsufficientSpaceError,),
                bound=10,
            )
        # Deleting is how a user makes room: on the full disk it must work, or say
        # clearly that there is no space.
        if known.files:
            victim = next(iter(known.files))
            outcome, _ = await expect(
                log,
                f"delete while the disk is full ({label})",
                target,
                lambda: store.delete(victim),
                expected="deleted, or InsufficientSpaceError",
                errors=(InsufficientSpaceError,),
                bound=10,
            )
            if outcome.outcome == "succeeded":
                known.files.pop(victim)
        # The operator frees space; the store works again without a restart.
        ballast.unlink()
        filler.unlink()
        shutil.rmtree(downloads, ignore_errors=True)
        with contextlib.suppress(FiletierError):
            await store.flush()  # bookkeeping that waited for space

        async def after() -> None:
            await check_consistent(store, known, log, f"{target} ({label}) after freeing space")
            for fid in list(known.files)[: len(known.files) // 2]:
                await store.delete(fid)
                known.files.pop(fid)
            await check_consistent(store, known, log, f"{target} ({label}) after deletes")

        await expect(log, f"space freed ({label})", target, after, expected="works again", bound=30)


def _fill_completely(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    block = b"\0" * (64 * KiB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                try:
                    os.write(fd, b"\0" * 512)
                except OSError:
                    return
    finally:
        os.close(fd)


async def _chunks(data: bytes, size: int = 64 * KiB) -> Any:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


# ------------------------------------------------------------------------ provider


async def provider_faults(
    root: Path, log: FaultLog, rounds: int, rng: random.Random, *, short: bool = False
) -> str:
    from testbed.provider_server import ProviderServer

    target = "provider (loopback, Kimi-compatible)"
    key = "sk-reliability-" + uuid.uuid4().hex
    with ProviderServer(api_key=key) as server:
        settings = Settings(
            home=root / "provider",
            fsync=False,
            bookkeeping_flush_seconds=0.05,
            kimi_api_key=key,
            kimi_base_url=server.base_url,
            provider_retry_attempts=3,
            provider_max_retry_wait_seconds=5,
            provider_timeout_seconds=1,
        )
        async with FileStore(settings) as store:
            for round_ in range(rounds):
                await _provider_round(store, server, log, target, round_, rng, short)
    return target


async def _provider_round(
    store: FileStore,
    server: Any,
    log: FaultLog,
    target: str,
    round_: int,
    rng: random.Random,
    short: bool,
) -> None:
    async def fresh() -> str:
        data = f"round {round_} {uuid.uuid4()}\n".encode() * rng.randint(1, 50)
        return str((await store.upload_file(data, filename="notes.txt")).file_id)

    async def ask(fid: str) -> None:
        await store.get_provider_file_id(fid, "kimi")

    async def unrecorded(fid: str) -> None:
        record = await store.stat(fid)
        if record.provider_file_ids:
            log.problem(
                f"{target}: a refused provider upload was recorded: {record.provider_file_ids}"
            )

    wait = round(rng.uniform(0.2, 0.6), 2)
    fid = await fresh()
    server.fail_next(1, 429, retry_after=wait)
    await expect(
        log,
        "429 with Retry-After 0.2-0.6 s (waited at least that long)",
        target,
        lambda: ask(fid),
        expected="waited, retried, uploaded",
        bound=5,
        min_elapsed=wait,
    )
    fid = await fresh()
    server.fail_next(20, 429)
    await expect(
        log,
        "429 on every attempt",
        target,
        lambda: ask(fid),
        expected="ProviderRateLimitedError",
        errors=(ProviderRateLimitedError,),
        success_ok=False,
        bound=10,
    )
    server.reset()
    await unrecorded(fid)
    if not short:
        fid = await fresh()
        server.fail_next(1, 503)
        await expect(
            log, "503 once", target, lambda: ask(fid), expected="retried, uploaded", bound=5
        )
    fid = await fresh()
    server.set_delay(3, count=1)
    await expect(
        log,
        "one answer slower than the 1 s timeout",
        target,
        lambda: ask(fid),
        expected="timed out, retried, uploaded",
        bound=6,
    )
    server.set_delay(0)
    if not short:
        fid = await fresh()
        server.set_delay(3)
        await expect(
            log,
            "every answer slower than the timeout",
            target,
            lambda: ask(fid),
            expected="ProviderTimeoutError",
            errors=(ProviderTimeoutError,),
            success_ok=False,
            bound=10,
        )
        server.set_delay(0)
        server.reset()
        await unrecorded(fid)
    # The local file is untouched by all of it.
    record = await store.stat(fid)
    data = await store.read_bytes(fid)
    if hashlib.sha256(data).hexdigest() != record.sha256:
        log.problem(f"{target}: the file's own bytes changed")


# --------------------------------------------------------------------------- suite

SUITES: dict[str, Callable[..., Awaitable[str]]] = {
    "s3": s3_proxy_faults,
    "s3-process": s3_process_faults,
    "pg": pg_restart_under_load,
    "disk": disk_full,
    "provider": provider_faults,
}


async def run_faults(
    only: list[str] | None = None,
    *,
    rounds: int = 1,
    short: bool = False,
    seed: int | None = None,
    root: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    log = FaultLog(progress=progress)
    started = time.monotonic()
    targets: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ft-faults-")))
        for name in only or list(SUITES):
            try:
                targets[name] = await SUITES[name](root / name, log, rounds, rng, short=short)
            except Exception as exc:  # noqa: BLE001 - a suite that breaks is a finding
                log.problem(f"{name}: the suite itself failed: {type(exc).__name__}: {exc}")
    failed = [asdict(o) for o in log.outcomes if not o.ok]
    return {
        "suite": "faults",
        "seed": seed,
        "rounds": rounds,
        "short": short,
        "targets": targets,
        "injected": len(log.outcomes),
        "ok": len(log.outcomes) - len(failed),
        "outcomes": [asdict(o) for o in log.outcomes],
        "violations": failed + [{"problem": p} for p in log.problems],
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.faults")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SUITES)}")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="one of each fault (CI)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    only = args.only.split(",") if args.only else None
    summary = asyncio.run(
        run_faults(only, rounds=args.rounds, short=args.short, seed=args.seed, progress=progress)
    )
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
