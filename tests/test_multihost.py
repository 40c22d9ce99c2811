"""Several hosts on one PostgreSQL database and one bucket, each with its own disk cache.

A "host" here is a process (or a group of processes) with its own ``FILETIER_HOME``; all of
them share ``DATABASE_URL`` and the S3 bucket, as production deployments do. The promises
under test:

- content is written to the bucket once, whichever hosts upload it and however many at
  the same moment (put-if-absent, ordered by the PostgreSQL advisory content lock);
- every object has a blob row and every file row has its object, whatever the hosts did
  concurrently;
- every host reads every file intact, including files other hosts uploaded;
- processes of one host share that host's disk cache: uncached content is read from the
  primary once per host, not once per process;
- a delete on one host racing a download on another gives the downloader the intact
  bytes or a clear "not found" (CLI exit 4), never damaged data;
- uploads on one host racing deletes of the same content on another never leave a file
  row whose object is gone.

Hosts run the real ``filetier`` CLI (``tests/support/procs/mh_host.py``) or the library
(``tests/support/procs/mh_store.py``) in child processes released together by a go file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from filetier import FileStore, Settings
from filetier.store import storage_key
from testbed.services import S3Server
from tests.support.procs import Child, sha256_file

MiB = 1024 * 1024
CLI = "from filetier.interfaces.cli.app import main; main()"
NOT_FOUND_EXIT = 4

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Host:
    """One host's directories and the environment its processes run with."""

    root: Path
    home: Path
    env: dict[str, str]

    @property
    def out(self) -> Path:
        """The host's download directory (its only allowed root)."""
        return self.root / "out"

    @property
    def cache_tmp(self) -> Path:
        """Where the host's disk cache writes a fetch in progress."""
        return self.home / "cache" / "tmp"


def make_host(
    tmp_path: Path, name: str, pg_url: str, server: S3Server, bucket: str, *, home: Path
) -> Host:
    root = tmp_path / name
    (root / "out").mkdir(parents=True)
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=pg_url,
        FILETIER_HOME=str(home),
        FILE_CACHE_DIR=str(home / "cache"),
        FILETIER_ALLOWED_ROOTS=str(root / "out"),
        FILETIER_FSYNC="0",
        FILETIER_BOOKKEEPING_FLUSH_SECONDS="0.05",
        PYTHONDONTWRITEBYTECODE="1",
        **server.env(bucket),
    )
    return Host(root, home, env)


def make_hosts(
    tmp_path: Path, count: int, pg_url: str, server: S3Server, bucket: str, *, prefix: str = "host"
) -> list[Host]:
    return [
        make_host(
            tmp_path, f"{prefix}{i}", pg_url, server, bucket, home=tmp_path / f"{prefix}{i}/home"
        )
        for i in range(count)
    ]


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def command(*argv: str | Path, delay: float = 0.0) -> dict[str, Any]:
    return {"argv": [str(a) for a in argv], "delay": delay}


def start_host(
    stack: contextlib.ExitStack,
    host: Host,
    commands: list[dict[str, Any]],
    go: Path,
    *,
    parallel: int = 3,
) -> Child:
    """An ``mh_host`` that runs ``commands`` once ``go`` exists."""
    plan = go.with_name(f"plan-{uuid.uuid4().hex[:8]}.json")
    plan.write_text(json.dumps({"go": str(go), "parallel": parallel, "commands": commands}))
    return stack.enter_context(Child("mh_host", plan, env=host.env, cwd=host.root))


def collect(child: Child, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
    """The ``count`` commands an ``mh_host`` ran, in the order they ended."""
    ran = [child.expect("ran", timeout) for _ in range(count)]
    child.expect("done")
    assert child.finish() == 0, child.stderr()
    return ran


def run_hosts(
    tmp_path: Path, plans: list[tuple[Host, list[dict[str, Any]]]], *, parallel: int = 3
) -> list[list[dict[str, Any]]]:
    """Run one ``mh_host`` per plan, released together; what each ran."""
    go = tmp_path / f"go-{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        children = [start_host(stack, host, cmds, go, parallel=parallel) for host, cmds in plans]
        for child in children:
            child.expect("ready")
        go.touch()
        return [
            collect(child, len(cmds)) for child, (_h, cmds) in zip(children, plans, strict=True)
        ]


def run_cli(host: Host, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *map(str, argv)],
        env=host.env,
        cwd=host.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ran_ok(ran: dict[str, Any]) -> Any:
    """The JSON a CLI command printed, after checking it exited 0."""
    assert ran["code"] == 0, f"{ran['argv']} exited {ran['code']}: {ran['stderr']}"
    return json.loads(ran["stdout"])


async def database_rows(pg_url: str) -> tuple[list[str], dict[str, str]]:
    """The ``file_hash`` of every file row, and ``sha256 -> storage_key`` of every blob."""
    conn = await asyncpg.connect(pg_url, timeout=10)
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


async def assert_rows_match_objects(pg_url: str, server: S3Server, bucket: str) -> set[str]:
    """Every object has a blob row, every blob row its object, every file row its blob;
    returns the object keys."""
    files, blobs = await database_rows(pg_url)
    keys = set(server.object_keys(bucket))
    assert all(key.startswith("sha256/") for key in keys), sorted(keys)
    assert set(blobs.values()) == keys, "objects and blob rows differ"
    assert all(blobs.get(sha) == storage_key(sha) for sha in files), "a file row has no object"
    return keys


def store_settings(home: Path, pg_url: str, server: S3Server, bucket: str) -> Settings:
    options: dict[str, Any] = {
        "home": home,
        "database_url": pg_url,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        **server.settings_overrides(bucket),
    }
    return Settings(**options)


# ---------------------------------------------------------------------------- CLI hosts


async def test_three_cli_hosts_upload_and_download_everything_concurrently(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    bucket = s3.create_bucket()
    hosts = make_hosts(tmp_path, 3, pg_url, s3, bucket)
    sources = tmp_path / "sources"
    shared = {
        sources / f"shared-{i}.bin": write_random(sources / f"shared-{i}.bin", 2 * MiB)
        for i in range(3)
    }
    own = [
        {
            sources / f"host{h}-{i}.bin": write_random(
                sources / f"host{h}-{i}.bin", (1 + (h + i) % 3) * MiB
            )
            for i in range(3)
        }
        for h in range(3)
    ]
    expected_sha = shared | {path: sha for files in own for path, sha in files.items()}
    distinct = set(expected_sha.values())
    assert len(distinct) == 12

    # Every host uploads the shared files first, in the same order: the same content
    # arrives from three hosts at the same moment.
    uploads = run_hosts(
        tmp_path,
        [(host, [command("upload", *shared, *own[h], "--json")]) for h, host in enumerate(hosts)],
    )
    sha_of_id: dict[str, str] = {}
    host_ids: list[list[str]] = []
    written: dict[str, int] = {}
    for (ran,) in uploads:
        results = ran_ok(ran)
        assert len(results) == 6
        host_ids.append([result["file_id"] for result in results])
        for path, result in zip(ran["argv"][1:7], results, strict=True):
            assert result["sha256"] == expected_sha[Path(path)]
            sha_of_id[result["file_id"]] = result["sha256"]
            written[result["sha256"]] = written.get(result["sha256"], 0) + result["bytes_written"]
    assert len(sha_of_id) == 18
    # Written once: each content's bytes went to the bucket from exactly one upload.
    sizes = {sha: path.stat().st_size for path, sha in expected_sha.items()}
    assert written == sizes

    # Every host downloads every content it did not upload itself (the other hosts'
    # own files, from both of them) and the next host's copies of the shared files:
    # nine CLI downloads per host, in an order of its own, every file id by some host.
    plans = []
    for h, host in enumerate(hosts):
        order = [fid for other, ids in enumerate(host_ids) if other != h for fid in ids[3:]]
        order += host_ids[(h + 1) % 3][:3]
        random.Random(h).shuffle(order)
        plans.append(
            (
                host,
                [
                    command("download", fid, "--dest", host.out / f"{fid}.bin", "--json")
                    for fid in order
                ],
            )
        )
    downloads = run_hosts(tmp_path, plans, parallel=3)
    tiers: dict[str, int] = {}
    downloaded: dict[str, int] = {}
    for host, ran_list in zip(hosts, downloads, strict=True):
        assert len(ran_list) == 9
        for ran in ran_list:
            result = ran_ok(ran)
            fid = ran["argv"][1]
            assert result["sha256"] == sha_of_id[fid]
            assert Path(result["path"]) == host.out / f"{fid}.bin"
            assert sha256_file(Path(result["path"])) == sha_of_id[fid]
            tiers[result["tier"]] = tiers.get(result["tier"], 0) + 1
            downloaded[fid] = downloaded.get(fid, 0) + 1
        assert sorted(p.name for p in host.out.iterdir()) == sorted(
            f"{r['argv'][1]}.bin" for r in ran_list
        )

    shared_ids = {fid for ids in host_ids for fid in ids[:3]}
    assert downloaded == {fid: 1 if fid in shared_ids else 2 for fid in sha_of_id}
    keys = await assert_rows_match_objects(pg_url, s3, bucket)
    assert keys == {storage_key(sha) for sha in distinct}
    files, blobs = await database_rows(pg_url)
    assert sorted(files) == sorted(sha_of_id.values())
    assert set(blobs) == distinct

    verified = run_cli(hosts[0], "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["findings"] == []
    assert report["blobs_checked"] == 12
    print(f"download tiers: {tiers}")


# ------------------------------------------------------------------------ library hosts


async def test_same_new_content_from_three_hosts_is_written_once(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    bucket = s3.create_bucket()
    hosts = make_hosts(tmp_path, 3, pg_url, s3, bucket)
    source = tmp_path / "same.bin"
    sha = write_random(source, 4 * MiB)
    go = tmp_path / "go"
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child("mh_store", "upload", source, "--go", go, env=host.env, cwd=host.root)
            )
            for host in hosts
        ]
        for child in children:
            child.expect("ready")
        go.touch()
        results = [child.expect("uploaded", timeout=120) for child in children]
        assert [child.finish() for child in children] == [0, 0, 0]

    assert {r["sha256"] for r in results} == {sha}
    writers = [r for r in results if not r["deduplicated"]]
    assert len(writers) == 1, results
    assert writers[0]["bytes_written"] == 4 * MiB
    assert sorted(r["bytes_written"] for r in results) == [0, 0, 4 * MiB]
    assert len({r["file_id"] for r in results}) == 3  # one file row per upload
    keys = await assert_rows_match_objects(pg_url, s3, bucket)
    assert keys == {storage_key(sha)}
    files, _blobs = await database_rows(pg_url)
    assert files == [sha, sha, sha]


async def test_uploads_on_one_host_racing_deletes_on_another_never_lose_the_object(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    bucket = s3.create_bucket()
    uploader, deleter = make_hosts(tmp_path, 2, pg_url, s3, bucket)
    source = tmp_path / "churn.bin"
    sha = write_random(source, 256 * 1024)
    expected = source.read_bytes()
    uploads = 30
    go, stop = tmp_path / "go", tmp_path / "stop"
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(
            Child(
                "mh_store",
                "upload",
                source,
                "--repeat",
                str(uploads),
                "--go",
                go,
                env=uploader.env,
                cwd=uploader.root,
            )
        )
        down = stack.enter_context(
            Child(
                "mh_store",
                "delete-content",
                sha,
                "--stop",
                stop,
                "--go",
                go,
                env=deleter.env,
                cwd=deleter.root,
            )
        )
        up.expect("ready")
        down.expect("ready")
        go.touch()
        uploaded = [up.expect("uploaded", timeout=120) for _ in range(uploads)]
        assert up.finish() == 0, up.stderr()
        stop.touch()
        deleted = down.expect("done", timeout=120)
        assert down.finish() == 0, down.stderr()

    files, _blobs = await database_rows(pg_url)
    assert len(files) == uploads - deleted["deleted"]
    # The object came and went in turns: every write (an upload that found it gone) was
    # undone by one delete of the last reference, except a write that survives.
    writes = sum(not u["deduplicated"] for u in uploaded)
    assert writes == deleted["blobs_deleted"] + (1 if files else 0), (writes, deleted)
    keys = await assert_rows_match_objects(pg_url, s3, bucket)
    assert keys == ({storage_key(sha)} if files else set())
    # A third host, with nothing cached, reads every surviving file from the bucket.
    async with FileStore(store_settings(tmp_path / "reader", pg_url, s3, bucket)) as store:
        survivors = {u["file_id"] for u in uploaded} & {
            str(r.file_id) for r in (await store.list(sha256=sha, limit=1000)).items
        }
        assert len(survivors) == len(files)
        for fid in survivors:
            assert await store.read_bytes(fid) == expected
        assert (await store.verify()).findings == []
    print(f"{writes} writes, {deleted['deleted']} deletes, {len(files)} files left")


def download_from(
    tmp_path: Path, hosts: list[Host], file_id: str, label: str
) -> list[dict[str, Any]]:
    """Three library processes download ``file_id`` at once; their reports."""
    go = tmp_path / f"go-{label}"
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                Child(
                    "mh_store",
                    "download",
                    file_id,
                    host.out / f"{label}-{index}.bin",
                    "--go",
                    go,
                    env=host.env,
                    cwd=host.root,
                )
            )
            for index, host in enumerate(hosts)
        ]
        for child in children:
            child.expect("ready")
        go.touch()
        results = [child.expect("done", timeout=120) for child in children]
        assert [child.finish() for child in children] == [0, 0, 0]
    return results


async def test_uncached_content_is_read_once_per_host_not_once_per_process(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    bucket = s3.create_bucket()
    payload = os.urandom(4 * MiB)
    async with FileStore(store_settings(tmp_path / "uploader", pg_url, s3, bucket)) as store:
        uploaded = await store.upload_file(payload, filename="big.bin")
    fid = str(uploaded.file_id)

    # "Same host": three processes share one FILETIER_HOME, so one disk cache.
    same_home = tmp_path / "same-host-home"
    same_host = [
        make_host(tmp_path, f"same{i}", pg_url, s3, bucket, home=same_home) for i in range(3)
    ]
    same = download_from(tmp_path, same_host, fid, "same")
    assert {r["sha256"] for r in same} == {uploaded.sha256}
    assert sum(r["primary_reads"] for r in same) == 1, same
    assert sorted(r["tier"] for r in same) == ["disk", "disk", "primary"]

    # "Three hosts": separate homes, separate caches: each reads the primary once.
    separate = download_from(tmp_path, make_hosts(tmp_path, 3, pg_url, s3, bucket), fid, "apart")
    assert {r["sha256"] for r in separate} == {uploaded.sha256}
    assert [r["primary_reads"] for r in separate] == [1, 1, 1], separate


# ------------------------------------------------------------------- delete vs download


async def test_delete_on_one_host_while_another_downloads(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    bucket = s3.create_bucket()
    payloads = [os.urandom(6 * MiB) for _ in range(3)]
    async with FileStore(store_settings(tmp_path / "uploader", pg_url, s3, bucket)) as store:
        uploaded = [
            await store.upload_file(data, filename=f"race-{i}.bin")
            for i, data in enumerate(payloads)
        ]
    fids = [str(u.file_id) for u in uploaded]
    sha_of_id = {str(u.file_id): u.sha256 for u in uploaded}
    # One downloading host per race (a fresh cache each), one deleting host for all.
    readers = make_hosts(tmp_path, 3, pg_url, s3, bucket, prefix="reader")
    (deleter,) = make_hosts(tmp_path, 1, pg_url, s3, bucket, prefix="deleter")
    go = tmp_path / "go"
    with contextlib.ExitStack() as stack:
        downloaders = [
            start_host(
                stack,
                reader,
                [command("download", fid, "--dest", reader.out / "copy.bin", "--json")],
                go,
            )
            for reader, fid in zip(readers, fids, strict=True)
        ]
        # Races 0 and 1: `filetier rm` started with the download, and 0.3 s later.
        cli_deleter = start_host(
            stack,
            deleter,
            [command("rm", fids[0], "--json"), command("rm", fids[1], "--json", delay=0.3)],
            go,
        )
        # Race 2: a delete the moment the reader's fetch from the bucket begins.
        store_deleter = stack.enter_context(
            Child(
                "mh_store",
                "delete",
                fids[2],
                "--when-file-in",
                readers[2].cache_tmp,
                "--go",
                go,
                env=deleter.env,
                cwd=deleter.root,
            )
        )
        for child in (*downloaders, cli_deleter, store_deleter):
            child.expect("ready")
        go.touch()
        downloads = [collect(child, 1)[0] for child in downloaders]
        cli_deletes = collect(cli_deleter, 2)
        store_delete = store_deleter.expect("done", timeout=120)
        assert store_deleter.finish() == 0, store_deleter.stderr()

    for ran in cli_deletes:
        (result,) = ran_ok(ran)
        assert result["blob_deleted"] is True
    assert store_delete["blob_deleted"] is True

    outcomes = []
    for reader, fid, ran in zip(readers, fids, downloads, strict=True):
        target = reader.out / "copy.bin"
        if ran["code"] == 0:
            assert json.loads(ran["stdout"])["sha256"] == sha_of_id[fid]
            assert sha256_file(target) == sha_of_id[fid]
            outcomes.append("intact")
        else:
            assert ran["code"] == NOT_FOUND_EXIT, f"exit {ran['code']}: {ran['stderr']}"
            (line,) = ran["stderr"].strip().splitlines()  # --json: one JSON error object
            assert json.loads(line)["error"] == {
                "type": "NotFoundError",
                "message": f"no file with id {fid}",
                "exit_code": NOT_FOUND_EXIT,
            }
            assert ran["stdout"] == ""
            outcomes.append("not found")
        # Nothing half-written anywhere: the destination holds the intact copy or nothing,
        # and no fetch was left behind in the reader's cache.
        assert [p.name for p in reader.out.iterdir()] == (["copy.bin"] if ran["code"] == 0 else [])
        assert list(reader.cache_tmp.iterdir()) == []

    files, blobs = await database_rows(pg_url)
    assert files == [] and blobs == {}
    assert await assert_rows_match_objects(pg_url, s3, bucket) == set()
    print(
        f"download outcomes while deleting: {outcomes}; "
        f"fetch seen before the last delete: {store_delete['trigger_seen']}"
    )


async def test_delete_of_the_last_file_waits_for_another_hosts_insert_of_the_same_content(
    tmp_path: Path, pg_url: str, moto: S3Server
) -> None:
    """Another host is mid-way through recording an upload of the same bytes (its
    transaction holds the blob row and has inserted its file row, not yet committed): a
    delete of the last committed file must wait for it and then keep the blob row and
    object, never leave the new file without its blob."""
    bucket = moto.create_bucket()
    settings = store_settings(tmp_path / "host", pg_url, moto, bucket)
    async with FileStore(settings) as store:
        first = await store.upload_file(b"shared by two hosts" * 100, filename="a.txt")
        other_host = await asyncpg.connect(pg_url.replace("+asyncpg", ""), timeout=10)
        try:
            transaction = other_host.transaction()
            await transaction.start()
            await other_host.execute(
                "SELECT sha256 FROM filetier.blobs WHERE sha256 = $1 FOR UPDATE", first.sha256
            )
            await other_host.execute(
                "CREATE TEMP TABLE pending AS SELECT * FROM filetier.file_metadata WHERE file_id = $1;"
                " UPDATE pending SET file_id = gen_random_uuid();"
                " INSERT INTO filetier.file_metadata SELECT * FROM pending;".replace(
                    "$1", f"'{first.file_id}'"
                )
            )
            delete = asyncio.create_task(store.delete(first.file_id))
            await asyncio.sleep(0.5)
            assert not delete.done(), "the delete did not wait for the other host's insert"
            await transaction.commit()
            result = await asyncio.wait_for(delete, timeout=10)
        finally:
            await other_host.close()
        assert result.blob_deleted is False
        files, blobs = await database_rows(pg_url)
        assert files == [first.sha256]
        assert set(blobs) == {first.sha256}
        assert await assert_rows_match_objects(pg_url, moto, bucket) == {storage_key(first.sha256)}
