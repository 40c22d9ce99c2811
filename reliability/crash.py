"""SIGKILL a worker process at random points; after every kill, check the store's promises.

    python -m reliability.crash --mode embedded|production --kills 200 [--seed N] [--json-out F]

The worker runs a random mix against one store, without pause: uploads (a path, bytes, a
stream or a file object; 1 KiB to 8 MiB, log-uniform, a quarter of them content shared
with earlier uploads so dedup and delete race each other), downloads, streamed reads,
deletes, ``cleanup_cache`` and ``gc(grace_seconds=0)``. It reports each step over a pipe,
one JSON object per line::

    {"event": "ready", "files": 12}
    {"event": "begin", "n": 7, "op": "upload", "kind": "stream", "size": 1048576}
    {"event": "uploaded", "n": 7, "file_id": "…", "sha256": "…", "size": 1048576}
    {"event": "deleting", "n": 8, "file_id": "…"}   {"event": "deleted", …}
    {"event": "end", "n": 8}

``uploaded`` and ``deleted`` are sent only after ``upload_file`` / ``delete`` returned:
they are the acknowledgements a user would have seen. The parent kills the worker with
SIGKILL after a random 0-400 ms, or (a third of the time) a moment after an upload began,
then, with the worker dead, checks:

1. nothing partial is visible: every object in the primary (a directory walk, or the S3
   bucket listing) sits at a well-formed key and its bytes hash to the key's name;
2. no row points at a missing or corrupt object: ``verify()`` finds nothing but
   ``orphan_object`` / ``orphan_blob_row`` (what a crash may leave by design);
3. every acknowledged upload not acknowledged as deleted is listed with its SHA-256, and
   every listed file downloads (from the primary, caches evicted) and hashes right; an
   acknowledged delete stays deleted;
4. no object leaks past one ``gc(grace_seconds=0)``: afterwards the objects are exactly
   the blob rows' keys, and the blob rows exactly the referenced contents; stale temp
   files are removed by ``cleanup_cache``;
5. the store opens and works: an upload, a download and a delete round trip.

A violation is recorded (not raised) so one bug does not hide the next; the summary's
``violations`` list names the check, the kill and the detail.

Workers are forked from a ``multiprocessing`` forkserver that has already imported
filetier: a restart then costs the store's open (~0.1 s), not the interpreter start and
imports (1-3 s), which is what makes hundreds of kills per mode affordable. Each worker
is still a separate process, configured only through its environment, and SIGKILL
leaves it no chance to clean up.
"""

# ruff: noqa: S311 - the workload and kill timing are random by design, not secrets

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filetier import FileRecord, FileStore, FiletierError, Settings, StorageUnavailableError
from reliability.backends import Mode, StoreUnderTest, age, sha256_of_file, store_under_test

KiB = 1024
MiB = 1024 * 1024
# What verify() may report after a crash by design: gc's work, not damage.
CRASH_FINDINGS = frozenset({"orphan_object", "orphan_blob_row"})
SHARED_POOL = 8
MAX_DELAY_SECONDS = 0.4
CHECK_TIMEOUT_SECONDS = 300.0
# Reads of a file that fail only because the S3 server did not answer are tried this often.
STORAGE_RETRIES = 3


@dataclass(frozen=True)
class Workload:
    min_size: int = KiB
    max_size: int = 8 * MiB
    max_files: int = 24  # at this many live files uploads give way: the store stays small
    shared_fraction: float = 0.25


# ----------------------------------------------------------------------------- worker


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _shared_content(index: int, workload: Workload) -> bytes:
    """Content that recurs across uploads and workers (deterministic per index)."""
    rng = random.Random(f"shared-{index}")
    return rng.randbytes(_log_uniform(rng, workload.min_size, workload.max_size))


async def _chunks(data: bytes, size: int = 64 * KiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def _pick(rng: random.Random, live: int, workload: Workload) -> str:
    if live == 0:
        return "upload"
    weights = {
        "upload": 0.42 if live < workload.max_files else 0.08,
        "download": 0.16,
        "read": 0.10,
        "delete": 0.18 if live < workload.max_files else 0.40,
        "cleanup": 0.07,
        "gc": 0.07,
    }
    return rng.choices(list(weights), weights=list(weights.values()))[0]


async def _work(conn: Any, seed: int, workload: Workload) -> None:
    def emit(message: dict[str, Any]) -> None:
        conn.send_bytes(json.dumps(message).encode())

    rng = random.Random(seed)
    pid = os.getpid()
    settings = Settings()
    out = settings.allowed_roots[0]
    scratch = Path(os.environ["RELIABILITY_SCRATCH"])
    async with FileStore(settings) as store:
        files: dict[str, str] = {}
        offset: int | None = 0
        while offset is not None:
            page = await store.list(limit=1000, offset=offset)
            files.update({str(r.file_id): r.sha256 for r in page.items})
            offset = page.next_offset
        emit({"event": "ready", "pid": pid, "files": len(files)})
        n = 0
        while True:
            n += 1
            op = _pick(rng, len(files), workload)
            if op == "upload":
                if rng.random() < workload.shared_fraction:
                    data = _shared_content(rng.randrange(SHARED_POOL), workload)
                else:
                    data = rng.randbytes(_log_uniform(rng, workload.min_size, workload.max_size))
                kind = rng.choice(("path", "bytes", "stream", "fileobj"))
                source = scratch / f"src-{pid}.bin"
                if kind in ("path", "fileobj"):
                    source.write_bytes(data)
                emit({"event": "begin", "n": n, "op": op, "kind": kind, "size": len(data)})
                name = f"w{pid}-{n}.bin"
                if kind == "path":
                    result = await store.upload_file(source, filename=name)
                elif kind == "bytes":
                    result = await store.upload_file(data, filename=name)
                elif kind == "stream":
                    result = await store.upload_file(_chunks(data), filename=name)
                else:
                    with source.open("rb") as handle:
                        result = await store.upload_file(handle, filename=name)
                fid = str(result.file_id)
                emit(
                    {
                        "event": "uploaded",
                        "n": n,
                        "file_id": fid,
                        "sha256": result.sha256,
                        "size": result.size,
                        "kind": kind,
                        "deduplicated": result.deduplicated,
                    }
                )
                if result.sha256 != hashlib.sha256(data).hexdigest():
                    raise AssertionError(f"upload {fid} acknowledged with the wrong SHA-256")
                files[fid] = result.sha256
                source.unlink(missing_ok=True)
            elif op in ("download", "read"):
                fid = rng.choice(list(files))
                emit({"event": "begin", "n": n, "op": op, "file_id": fid})
                digest = hashlib.sha256()
                if op == "download":
                    path = await store.download_file(fid, out / f"dl-{pid}.bin", overwrite=True)
                    digest.update(path.read_bytes())
                    path.unlink()
                else:
                    async with store.open(fid) as reader:
                        async for chunk in reader:
                            digest.update(chunk)
                if digest.hexdigest() != files[fid]:
                    raise AssertionError(f"{op} of {fid} returned bytes that do not verify")
            elif op == "delete":
                fid = rng.choice(list(files))
                emit({"event": "begin", "n": n, "op": op, "file_id": fid})
                emit({"event": "deleting", "n": n, "file_id": fid})
                await store.delete(fid)
                emit({"event": "deleted", "n": n, "file_id": fid})
                del files[fid]
            elif op == "cleanup":
                emit({"event": "begin", "n": n, "op": op})
                await store.cleanup_cache()
            else:
                emit({"event": "begin", "n": n, "op": op})
                await store.gc(grace_seconds=0)
            emit({"event": "end", "n": n})


def _worker_main(
    conn: Any, env: dict[str, str], cwd: str, seed: int, workload: dict[str, Any]
) -> None:
    """Entry point of a worker process (forked from the forkserver)."""
    os.chdir(cwd)  # Settings reads .env from the working directory: an empty one
    os.environ.update(env)
    code = 0
    try:
        asyncio.run(_work(conn, seed, Workload(**workload)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then exit 1
        code = 1
        with contextlib.suppress(Exception):
            conn.send_bytes(
                json.dumps(
                    {
                        "event": "error",
                        "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc()[-3000:],
                    }
                ).encode()
            )
    os._exit(code)  # no interpreter finalisation (obstore's runtime may abort it)


_FORKSERVER: Any = None


def _context() -> Any:
    global _FORKSERVER
    if _FORKSERVER is None:
        ctx = multiprocessing.get_context("forkserver")
        # The heavy imports, done once. Not this module: run as ``-m reliability.crash``
        # each worker re-imports it as ``__mp_main__``, and a preloaded copy would be a
        # second, conflicting one.
        ctx.set_forkserver_preload(
            [
                "filetier",
                "filetier.maintenance.cleanup",
                "filetier.maintenance.gc",
                "filetier.maintenance.verify",
                "reliability.backends",
            ]
        )
        _FORKSERVER = ctx
    return _FORKSERVER


# ----------------------------------------------------------------------------- parent


@dataclass
class Violation:
    check: str
    detail: str
    kill: int
    times: int = 1


@dataclass
class CrashRun:
    """One mode's run: the state learnt from the workers' acknowledgements, and figures."""

    sut: StoreUnderTest
    kills: int
    seed: int
    workload: Workload = field(default_factory=Workload)
    mid_upload_fraction: float = 0.35
    progress: Callable[[str], None] | None = None

    acked: dict[str, tuple[str, int]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    maybe_deleted: set[str] = field(default_factory=set)
    in_flight: dict[str, Any] | None = None
    violations: dict[tuple[str, str], Violation] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    kills_in: Counter[str] = field(default_factory=Counter)

    def violate(self, check: str, detail: str, kill: int) -> None:
        found = self.violations.get((check, detail))
        if found is None:
            self.violations[(check, detail)] = Violation(check, detail, kill)
            if self.progress:
                self.progress(f"VIOLATION at kill {kill}: {check}: {detail}")
        else:
            found.times += 1

    # -- one worker -----------------------------------------------------------------------

    def _handle(self, message: dict[str, Any], kill: int) -> None:
        event = message.get("event")
        if event == "begin":
            self.in_flight = message
        elif event == "end":
            self.in_flight = None
            self.counts["worker_ops"] += 1
        elif event == "uploaded":
            self.acked[message["file_id"]] = (message["sha256"], message["size"])
            self.counts["acknowledged_uploads"] += 1
            self.counts["acknowledged_upload_bytes"] += message["size"]
            if message.get("deduplicated"):
                self.counts["deduplicated_uploads"] += 1
        elif event == "deleting":
            self.maybe_deleted.add(message["file_id"])
        elif event == "deleted":
            self.maybe_deleted.discard(message["file_id"])
            self.deleted.add(message["file_id"])
            self.counts["acknowledged_deletes"] += 1
        elif event == "error":
            self.violate("worker_error", message["error"], kill)
            if self.progress:
                self.progress(message.get("traceback", ""))

    def _pump(
        self, conn: Any, kill: int, until: Callable[[dict[str, Any]], bool] | None, timeout: float
    ) -> dict[str, Any] | None:
        """Handle messages until one satisfies ``until`` (returned), EOF or the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not conn.poll(remaining):
                return None
            try:
                message = json.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return None
            self._handle(message, kill)
            if until is not None and until(message):
                return message

    def _kill_one(self, kill: int, rng: random.Random) -> None:
        ctx = _context()
        reader, writer = ctx.Pipe(duplex=False)
        env = self.sut.env(RELIABILITY_SCRATCH=str(self.sut.scratch))
        proc = ctx.Process(
            target=_worker_main,
            args=(
                writer,
                env,
                str(self.sut.scratch),
                self.seed * 100_003 + kill,
                asdict(self.workload),
            ),
            daemon=True,
        )
        proc.start()
        writer.close()
        self.in_flight = None
        try:
            ready = self._pump(reader, kill, lambda m: m["event"] in ("ready", "error"), 60)
            if ready is None:
                self.violate("worker_did_not_start", "no ready message within 60 s", kill)
            elif ready["event"] == "ready":
                if rng.random() < self.mid_upload_fraction:
                    begun = self._pump(
                        reader,
                        kill,
                        lambda m: (
                            m["event"] == "error" or (m["event"] == "begin" and m["op"] == "upload")
                        ),
                        30,
                    )
                    if begun is None:
                        self.violate("worker_stalled", "no upload began within 30 s", kill)
                    elif begun["event"] == "begin":
                        # Somewhere inside the upload: it takes roughly size / 50 MB/s.
                        time.sleep(rng.uniform(0, 0.005 + begun["size"] / 50e6))
                else:
                    time.sleep(rng.uniform(0, MAX_DELAY_SECONDS))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
            self._pump(reader, kill, None, 5)  # what it said before dying
            reader.close()
        if proc.exitcode == -signal.SIGKILL:
            self.counts["kills"] += 1
            self.kills_in[self.in_flight["op"] if self.in_flight else "between operations"] += 1
        else:
            self.violate("worker_exited", f"exit status {proc.exitcode} before the kill", kill)

    # -- the checks -----------------------------------------------------------------------

    async def _check(self, kill: int, rng: random.Random) -> None:
        sut = self.sut
        for bad in await asyncio.to_thread(sut.unsound_objects):
            self.violate("partial_object_visible", bad, kill)
        temps = sut.temp_files()
        try:
            store = FileStore(sut.settings())
            await store.start()
        except FiletierError as exc:
            self.violate("store_does_not_open", f"{type(exc).__name__}: {exc}", kill)
            return
        try:
            await self._check_open(store, kill, rng, temps)
        finally:
            await store.close()

    async def _check_open(
        self, store: FileStore, kill: int, rng: random.Random, temps: list[Path]
    ) -> None:
        sut = self.sut
        report = await store.verify()
        for finding in report.findings:
            if finding.kind in CRASH_FINDINGS:
                self.counts[f"found_{finding.kind}"] += 1
            else:
                self.violate("verify", f"{finding.kind}: {finding.detail}", kill)

        records: dict[str, FileRecord] = {}
        offset: int | None = 0
        while offset is not None:
            page = await store.list(limit=1000, offset=offset)
            records.update({str(r.file_id): r for r in page.items})
            offset = page.next_offset
        for fid, (sha256, _size) in self.acked.items():
            if fid in self.deleted:
                if fid in records:
                    self.violate("deleted_file_visible", f"acknowledged delete of {fid}", kill)
            elif fid in self.maybe_deleted:
                continue  # the kill landed inside its delete: gone or intact, both fine
            elif fid not in records:
                self.violate("acknowledged_upload_lost", fid, kill)
            elif records[fid].sha256 != sha256:
                self.violate("acknowledged_upload_changed", fid, kill)
        for fid in list(self.maybe_deleted):
            self.maybe_deleted.discard(fid)
            if fid not in records:
                self.deleted.add(fid)  # the delete committed before the kill
        for fid, record in records.items():
            if fid not in self.acked:
                # Committed, but killed before the acknowledgement: a file from now on.
                self.acked[fid] = (record.sha256, record.size)
                self.counts["committed_before_acknowledgement"] += 1
            await self._verify_bytes(store, record, kill)

        collected = await store.gc(grace_seconds=0)
        self.counts["collected_by_gc"] += len(collected.actions)
        blobs = await store.repo.all_blobs()
        referenced = await store.repo.referenced_hashes()
        objects = {k for k in sut.object_keys() if k.startswith("sha256/")}
        rows = {b.storage_key for b in blobs}
        if objects != rows:
            self.violate(
                "object_leaked_past_gc",
                f"objects without a row: {sorted(objects - rows)[:3]}; "
                f"rows without an object: {sorted(rows - objects)[:3]}",
                kill,
            )
        if {b.sha256 for b in blobs} != referenced:
            self.violate(
                "blob_row_leaked_past_gc",
                str(sorted({b.sha256 for b in blobs} ^ referenced)[:3]),
                kill,
            )
        if sut.open_multipart_uploads():
            self.counts["open_multipart_uploads"] = sut.open_multipart_uploads()

        if temps:
            self.counts["temp_files_left_by_kills"] += len(temps)
            age(temps)
            await store.cleanup_cache()
            left = [t for t in temps if t.exists()]
            if left:
                self.violate("stale_temp_not_cleaned", str(left[:3]), kill)

        try:
            data = rng.randbytes(rng.randint(1, 256 * KiB))
            uploaded = await store.upload_file(data, filename="roundtrip.bin")
            path = await store.download_file(uploaded.file_id, sut.out / "roundtrip.bin")
            if path.read_bytes() != data:
                self.violate("store_unusable", "round trip returned other bytes", kill)
            path.unlink()
            await store.delete(uploaded.file_id)
            self.counts["round_trips"] += 1
        except FiletierError as exc:
            self.violate("store_unusable", f"{type(exc).__name__}: {exc}", kill)

    async def _verify_bytes(self, store: FileStore, record: FileRecord, kill: int) -> None:
        # Read from the primary itself: drop this process's copies first.
        store.memory.evict(record.sha256)
        store.disk.evict(record.sha256)
        for attempt in range(1, STORAGE_RETRIES + 1):
            try:
                path = await store.download_file(
                    record.file_id, self.sut.out / "verify.bin", overwrite=True
                )
                break
            except StorageUnavailableError as exc:
                # The S3 server not answering (a timeout on a loaded machine) says nothing
                # about what the kill did; the bytes are checked again once it answers.
                if attempt == STORAGE_RETRIES:
                    self.violate("file_unreadable", f"{record.file_id}: {exc}", kill)
                    return
                self.counts["reads_retried_after_storage_timeouts"] += 1
                await asyncio.sleep(2.0 * attempt)
            except FiletierError as exc:
                detail = f"{record.file_id}: {type(exc).__name__}: {exc}"
                self.violate("file_unreadable", detail, kill)
                return
        got = await asyncio.to_thread(sha256_of_file, path)
        path.unlink()
        if got != record.sha256:
            self.violate("file_corrupt", str(record.file_id), kill)
            return
        self.counts["files_verified"] += 1
        self.counts["bytes_verified"] += record.size

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        rng = random.Random(self.seed)
        started = time.monotonic()
        # The database and schema exist before the first kill.
        asyncio.run(self._open_once())
        for kill in range(1, self.kills + 1):
            self._kill_one(kill, rng)
            try:
                asyncio.run(asyncio.wait_for(self._check(kill, rng), CHECK_TIMEOUT_SECONDS))
            except TimeoutError:
                self.violate("check_hung", f"checks took over {CHECK_TIMEOUT_SECONDS:.0f} s", kill)
            except Exception as exc:  # noqa: BLE001 - a check that breaks is a finding too
                self.violate("check_failed", f"{type(exc).__name__}: {exc}", kill)
            if self.progress and (kill % 10 == 0 or kill == self.kills):
                self.progress(
                    f"[{self.sut.mode}] {kill}/{self.kills} kills, "
                    f"{self.counts['acknowledged_uploads']} acknowledged uploads, "
                    f"{self.counts['bytes_verified'] / MiB:.0f} MiB verified, "
                    f"{len(self.violations)} violations, {time.monotonic() - started:.0f} s"
                )
        return self.summary(time.monotonic() - started)

    async def _open_once(self) -> None:
        async with FileStore(self.sut.settings()):
            pass

    def summary(self, seconds: float) -> dict[str, Any]:
        c = self.counts
        return {
            "suite": "crash",
            "mode": self.sut.mode,
            "s3_backend": self.sut.s3_backend,
            "s3_note": self.sut.s3_note,
            "seed": self.seed,
            "kills_requested": self.kills,
            "kills": c["kills"],
            "kills_by_operation": dict(self.kills_in.most_common()),
            "worker_operations_completed": c["worker_ops"],
            "acknowledged_uploads": c["acknowledged_uploads"],
            "acknowledged_upload_bytes": c["acknowledged_upload_bytes"],
            "deduplicated_uploads": c["deduplicated_uploads"],
            "acknowledged_deletes": c["acknowledged_deletes"],
            "committed_before_acknowledgement": c["committed_before_acknowledgement"],
            "files_verified": c["files_verified"],
            "reads_retried_after_storage_timeouts": c["reads_retried_after_storage_timeouts"],
            "bytes_verified": c["bytes_verified"],
            "orphan_objects_found": c["found_orphan_object"],
            "orphan_blob_rows_found": c["found_orphan_blob_row"],
            "collected_by_gc": c["collected_by_gc"],
            "temp_files_left_by_kills": c["temp_files_left_by_kills"],
            "round_trips": c["round_trips"],
            "violations": [asdict(v) for v in self.violations.values()],
            "seconds": round(seconds, 1),
        }


def run_crash_suite(
    mode: Mode,
    kills: int,
    *,
    root: Path | None = None,
    seed: int | None = None,
    workload: Workload | None = None,
    prefer_ceph: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``kills`` kill-and-check rounds against a fresh store of ``mode``."""
    seed = seed if seed is not None else int.from_bytes(os.urandom(4), "big")
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ft-crash-")))
        sut = stack.enter_context(store_under_test(mode, root, prefer_ceph=prefer_ceph))
        run = CrashRun(sut, kills, seed, workload or Workload(), progress=progress)
        return run.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reliability.crash", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mode", choices=("embedded", "production"), required=True)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-size", type=int, default=8 * MiB, help="largest upload, bytes")
    parser.add_argument("--s3", choices=("ceph", "moto"), default="ceph", help="production S3")
    parser.add_argument("--json-out", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = run_crash_suite(
        args.mode,
        args.kills,
        seed=args.seed,
        workload=Workload(max_size=args.max_size),
        prefer_ceph=args.s3 == "ceph",
        progress=progress,
    )
    if summary["s3_note"] and args.s3 == "ceph":
        progress(f"note: production mode ran on moto, not Ceph: {summary['s3_note']}")
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 1 if summary["violations"] or summary["kills"] < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
