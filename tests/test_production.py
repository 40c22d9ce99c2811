"""Production mode: PostgreSQL metadata and an S3 primary (moto, a real Ceph RGW and the
real Supabase Storage server)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from filetier import (
    FileStore,
    InvalidInputError,
    MetadataUnavailableError,
    NotFoundError,
    Settings,
    StorageRefusedError,
    StorageUnavailableError,
)
from filetier.store import storage_key
from filetier.tiers.protocols import LocalPath
from testbed.services import MotoProcess, S3Server


def prod_settings(
    home: Path, pg_url: str, server: S3Server, bucket: str, **extra: object
) -> Settings:
    options: dict[str, object] = {
        "home": home,
        "database_url": pg_url,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        **server.settings_overrides(bucket),
        **extra,
    }
    return Settings(**options)  # type: ignore[arg-type]


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_round_trip_on_postgres_and_s3(home: Path, pg_url: str, s3: S3Server) -> None:
    bucket = s3.create_bucket()
    settings = prod_settings(home, pg_url, s3, bucket)
    payload = os.urandom(3 * 1024 * 1024)
    async with FileStore(settings) as store:
        assert not isinstance(store.primary, LocalPath)
        first = await store.upload_file(payload, filename="data.bin", metadata={"k": [1, 2]})
        second = await store.upload_file(payload, filename="copy.bin")
        assert second.deduplicated and second.bytes_written == 0
        assert s3.object_keys(bucket) == [
            f"sha256/{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}"
        ]
        store.memory.clear()
        store.disk.evict(first.sha256)
        assert await store.read_bytes(first.file_id) == payload  # from S3
        assert (await store.stats()).primary_reads == 1
        store.memory.clear()
        assert await store.read_bytes(second.file_id) == payload  # from the disk cache
        assert (await store.stats()).primary_reads == 1
        assert (await store.stat(first.file_id)).metadata == {"k": [1, 2]}
        assert (await store.verify()).findings == []
        await store.delete(first.file_id)
        assert len(s3.object_keys(bucket)) == 1  # still shared with the second file
        result = await store.delete(second.file_id)
        assert result.blob_deleted
        assert s3.object_keys(bucket) == []


async def test_plain_postgresql_url_and_jsonb_trigger(
    home: Path, pg_url: str, moto: S3Server
) -> None:
    plain = pg_dsn(pg_url)
    assert plain.startswith("postgresql://")
    settings = prod_settings(home, plain, moto, moto.create_bucket())
    async with FileStore(settings) as store:
        up = await store.upload_file(b"hello jsonb", filename="j.txt", metadata={"a": {"b": 1}})
        before = await store.stat(up.file_id)
        await asyncio.sleep(0.01)
        await store.read_bytes(up.file_id)
        await store.flush()
        after = await store.stat(up.file_id)
    assert after.access_count == 1
    assert after.updated_at > before.updated_at
    conn = await asyncpg.connect(plain)
    try:
        types = dict(
            await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'filetier' AND table_name = 'file_metadata'"
            )
        )
        triggers = await conn.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'filetier.file_metadata'::regclass"
        )
        # The trigger sets updated_at even for writes that do not go through filetier.
        await conn.execute(
            "UPDATE filetier.file_metadata SET updated_at = '2000-01-01' , access_count = 5"
        )
        touched = await conn.fetchval("SELECT updated_at FROM filetier.file_metadata")
    finally:
        await conn.close()
    assert types["metadata"] == "jsonb" and types["provider_file_ids"] == "jsonb"
    assert types["file_size"] == "bigint"
    assert "update_file_metadata_updated_at" in {t["tgname"] for t in triggers}
    assert touched.year >= 2026


async def test_row_level_security_scopes_a_tenant_role_to_its_owner(
    home: Path, pg_url: str, moto: S3Server
) -> None:
    settings = prod_settings(home, pg_url, moto, moto.create_bucket())
    async with FileStore(settings, owner="alice") as alice:
        a = await alice.upload_file(b"alice's notes", filename="a.txt")
    async with FileStore(settings, owner="bob") as bob:
        b = await bob.upload_file(b"bob's notes", filename="b.txt")
        with pytest.raises(NotFoundError):
            await bob.stat(a.file_id)  # owners are separate in the app too
        assert [r.file_id for r in (await bob.list()).items] == [b.file_id]

    dsn = pg_dsn(pg_url)
    role = f"tenant_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} NOLOGIN")
        await admin.execute(f"GRANT USAGE ON SCHEMA filetier TO {role}")
        await admin.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON filetier.file_metadata, filetier.file_download_history TO {role}"
        )
        async with admin.transaction():
            await admin.execute(f"SET LOCAL ROLE {role}")
            await admin.execute("SELECT set_config('filetier.owner', 'alice', true)")
            seen = await admin.fetch("SELECT original_filename FROM filetier.file_metadata")
            deleted = await admin.execute("DELETE FROM filetier.file_metadata WHERE owner = 'bob'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await admin.execute(
                    "UPDATE filetier.file_metadata SET owner = 'bob' WHERE original_filename = 'a.txt'"
                )
        async with admin.transaction():
            await admin.execute(f"SET LOCAL ROLE {role}")
            unset = await admin.fetch("SELECT 1 FROM filetier.file_metadata")  # no owner: nothing
        remaining = await admin.fetchval("SELECT count(*) FROM filetier.file_metadata")
        await admin.execute(
            f"REVOKE ALL ON filetier.file_metadata, filetier.file_download_history FROM {role}"
        )
        await admin.execute(f"REVOKE USAGE ON SCHEMA filetier FROM {role}")
        await admin.execute(f"DROP ROLE {role}")
    finally:
        await admin.close()
    assert [r["original_filename"] for r in seen] == ["a.txt"]
    assert deleted == "DELETE 0"
    assert unset == []
    assert remaining == 2


async def test_database_down_says_so(home: Path, moto: S3Server) -> None:
    from testbed.services import free_port

    settings = prod_settings(
        home,
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        moto,
        moto.create_bucket(),
        database_timeout_seconds=2,
    )
    started = time.monotonic()
    with pytest.raises(MetadataUnavailableError) as excinfo:
        async with FileStore(settings):
            pass
    assert "metadata database unavailable" in str(excinfo.value)
    assert "postgresql" in str(excinfo.value)
    assert time.monotonic() - started < 15


async def test_missing_bucket_is_an_actionable_error(
    home: Path, pg_url: str, moto: S3Server
) -> None:
    settings = prod_settings(home, pg_url, moto, "no-such-bucket-here")
    async with FileStore(settings) as store:
        with pytest.raises(StorageUnavailableError) as excinfo:
            await store.upload_file(b"x" * 100)
        assert "bucket does not exist" in str(excinfo.value)
        assert (await store.list()).total == 0


async def test_s3_outage_cached_reads_succeed_uploads_fail_cleanly(home: Path, pg_url: str) -> None:
    server_proc = MotoProcess().start()
    try:
        server = server_proc.server()
        bucket = server.create_bucket()
        settings = prod_settings(
            home,
            pg_url,
            server,
            bucket,
            storage_retry_attempts=3,
            storage_retry_timeout_seconds=4,
            storage_timeout_seconds=2,
            storage_connect_timeout_seconds=1,
        )
        big = os.urandom(6 * 1024 * 1024)  # above the memory item cap below
        async with FileStore(
            settings.model_copy(update={"memory_item_max_bytes": 1024 * 1024})
        ) as store:
            small = await store.upload_file(b"small and cached", filename="s.txt")
            large = await store.upload_file(big, filename="big.bin")
            await store.read_bytes(small.file_id)
            server_proc.stop()  # the object store goes away

            assert await store.read_bytes(small.file_id) == b"small and cached"  # memory
            path = await store.download_file(large.file_id)  # disk cache
            assert hashlib.sha256(path.read_bytes()).hexdigest() == large.sha256

            started = time.monotonic()
            with pytest.raises(StorageUnavailableError) as excinfo:
                await store.upload_file(os.urandom(2048), filename="new.bin")
            elapsed = time.monotonic() - started
            assert "storage unavailable" in str(excinfo.value)
            assert elapsed < 15, elapsed  # bounded retries
            assert (await store.list()).total == 2  # no row without its object

            server_proc.start()  # back on the same port; moto starts empty
            fresh = server.create_bucket()
            assert fresh
        # A new store on the restarted server works again.
        settings2 = prod_settings(home, pg_url, server, fresh)
        async with FileStore(settings2) as store:
            again = await store.upload_file(b"after the outage")
            assert await store.read_bytes(again.file_id) == b"after the outage"
    finally:
        server_proc.stop()


def _rgw_pid() -> int:
    pid_file = Path(os.environ.get("CEPH_DIR", "/tmp/filetier-ceph")) / "run" / "rgw.pid"
    return int(pid_file.read_text().strip())


def _restart_rgw() -> None:
    ceph_dir = Path(os.environ.get("CEPH_DIR", "/tmp/filetier-ceph"))
    env = {**os.environ, "CEPH_CONF": str(ceph_dir / "ceph.conf")}
    subprocess.run(
        ["radosgw", "-n", "client.rgw.a", "--pid-file", str(ceph_dir / "run" / "rgw.pid")],
        env=env,
        check=True,
        timeout=60,
    )
    deadline = time.monotonic() + 60
    from testbed.services import RGW_ENDPOINT, answers

    while not answers(RGW_ENDPOINT):
        assert time.monotonic() < deadline, "radosgw did not come back"
        time.sleep(0.5)


@pytest.mark.slow
async def test_ceph_gateway_stalled_then_killed_then_restarted(
    home: Path, pg_url: str, ceph: S3Server
) -> None:
    """The real S3 server stalls (SIGSTOP), dies (SIGKILL) and comes back mid-run."""
    bucket = ceph.create_bucket()
    settings = prod_settings(
        home,
        pg_url,
        ceph,
        bucket,
        storage_retry_attempts=2,
        storage_retry_timeout_seconds=6,
        storage_timeout_seconds=2,
        storage_connect_timeout_seconds=1,
        memory_item_max_bytes=64 * 1024,
    )
    before = {os.urandom(8).hex(): os.urandom(200_000) for _ in range(3)}
    async with FileStore(settings) as store:
        ids = {}
        for name, data in before.items():
            ids[name] = (await store.upload_file(data, filename=name)).file_id
        pid = _rgw_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            # Stalled: cached reads still succeed, a write fails within its bound.
            for name, data in before.items():
                assert await store.read_bytes(ids[name]) == data
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError, match="storage unavailable"):
                await store.upload_file(os.urandom(1000), filename="during-stall.bin")
            assert time.monotonic() - started < 20
        finally:
            os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
        try:
            with pytest.raises(StorageUnavailableError):
                await store.upload_file(os.urandom(1000), filename="while-down.bin")
            assert (await store.list()).total == len(before)  # no row without its object
        finally:
            _restart_rgw()
        after = await store.upload_file(b"after the restart", filename="after.txt")
        # The bytes written before the outage are still in the object store.
        store.memory.clear()
        for name in before:
            store.disk.evict(hashlib.sha256(before[name]).hexdigest())
        for name, data in before.items():
            assert await store.read_bytes(ids[name]) == data
        assert await store.read_bytes(after.file_id) == b"after the restart"
        report = await store.verify()
        # The upload refused during the stall may still land once the gateway resumes (its
        # PUT was queued there): an object without a row, which gc collects after its grace
        # window. What must never be is a stored file without its object.
        stored = {hashlib.sha256(d).hexdigest() for d in [*before.values(), b"after the restart"]}
        assert all(f.kind == "orphan_object" for f in report.findings), report.findings
        assert not stored & {f.sha256 for f in report.findings}
        assert len(ceph.object_keys(bucket)) == len(before) + 1 + len(report.findings)


async def test_a_file_that_changes_while_it_is_sent_to_s3_is_refused_and_nothing_is_kept(
    home: Path, pg_url: str, moto: S3Server, tmp_path: Path
) -> None:
    """Uploads to an S3 primary send the caller's file itself (hashed in place, no staged
    copy). If it is written to while the PUT is under way, the bytes sent may not be the
    bytes the key names: the upload fails with a clear error, and neither an object nor a
    row is left. Unchanged, the same file then uploads normally."""
    from reliability.proxy import FaultProxy

    bucket = moto.create_bucket()
    proxy = FaultProxy(moto.endpoint).start()
    try:
        settings = prod_settings(home, pg_url, moto, bucket, s3_endpoint=proxy.url)
        source = tmp_path / "growing.log"
        source.write_bytes(os.urandom(256 * 1024))
        async with FileStore(settings) as store:
            kept = await store.upload_file(b"already here", filename="kept.txt")
            proxy.delay_next(1, 1.5, method="PUT")
            upload = asyncio.create_task(store.upload_file(source))
            await asyncio.sleep(0.5)  # hashed; the PUT is held by the proxy
            with source.open("ab") as handle:
                handle.write(b"one more line\n")
            with pytest.raises(InvalidInputError, match="changed while it was being uploaded"):
                await upload
            listed = await store.list(limit=100)
            assert [r.file_id for r in listed.items] == [kept.file_id]
            assert moto.object_keys(bucket) == [storage_key(kept.sha256)]

            again = await store.upload_file(source)
            assert again.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
            assert await store.read_bytes(again.file_id) == source.read_bytes()
    finally:
        proxy.stop()


async def test_a_cancelled_delete_ends_before_the_same_content_is_stored_again(
    home: Path, pg_url: str, moto: S3Server
) -> None:
    """A delete cancelled while its request to the store is under way (a client gone, an
    MCP cancellation) still holds the content lock until that request is answered. Were
    the lock released at once, an upload of the same content could find the object still
    there, be acknowledged, and then lose it to the delete landing late."""
    from reliability.proxy import FaultProxy

    bucket = moto.create_bucket()
    proxy = FaultProxy(moto.endpoint).start()
    try:
        settings = prod_settings(home, pg_url, moto, bucket, s3_endpoint=proxy.url)
        data = os.urandom(10_000)
        async with FileStore(settings) as store:
            first = await store.upload_file(data, filename="first.bin")
            proxy.delay_next(1, 1.5, method="POST")  # obstore deletes with POST ?delete
            deleting = asyncio.create_task(store.delete(first.file_id))
            await asyncio.sleep(0.5)  # the rows are gone; the object's DELETE is held
            deleting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await deleting
            again = await store.upload_file(data, filename="again.bin")
            await asyncio.sleep(1.5)  # a DELETE still held would have landed by now
            assert moto.object_keys(bucket) == [storage_key(again.sha256)]
            store.memory.clear()
            store.disk.evict(again.sha256)
            assert await store.read_bytes(again.file_id) == data
    finally:
        proxy.stop()


async def test_more_concurrent_uploads_than_pooled_connections_all_succeed(
    home: Path, pg_url: str, moto: S3Server, tmp_path: Path
) -> None:
    """Each upload holds a content lock (a PostgreSQL session advisory lock, so a held
    connection) across its S3 put and then needs a connection for its insert. With 48 at
    once, more than the 20 connections the query pool has, none may wait for a connection
    that only another waiter could release: all finish, none times out."""
    bucket = moto.create_bucket()
    settings = prod_settings(home, pg_url, moto, bucket)
    sources = []
    for n in range(48):
        path = tmp_path / f"src-{n}.bin"
        path.write_bytes(os.urandom(512 * 1024))
        sources.append(path)
    async with FileStore(settings) as store:
        started = time.monotonic()
        uploaded = await asyncio.gather(*(store.upload_file(p) for p in sources))
        assert time.monotonic() - started < 60
        assert len({u.sha256 for u in uploaded}) == 48
        deleted = await asyncio.gather(*(store.delete(u.file_id) for u in uploaded))
        assert all(d.blob_deleted for d in deleted)
        assert moto.object_keys(bucket) == []


async def test_bodies_sent_to_a_loopback_store_are_hashed_once_not_signed_again(
    home: Path, pg_url: str, s3: S3Server, tmp_path: Path
) -> None:
    """Content addressing hashes every byte already; a SigV4 payload hash would hash each
    byte again here and once more on the server. On loopback (and over HTTPS) filetier
    sends ``UNSIGNED-PAYLOAD``, single PUTs and multipart parts alike, and the server
    accepts it; with ``FILETIER_S3_SIGN_PAYLOAD=always`` each body is signed."""
    from reliability.proxy import FaultProxy

    bucket = s3.create_bucket()
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        for _ in range(65):  # over the single-PUT size: sent in parts
            handle.write(os.urandom(1024 * 1024))
    proxy = FaultProxy(s3.endpoint).start()
    try:
        settings = prod_settings(home, pg_url, s3, bucket, s3_endpoint=s3.endpoint_via(proxy.url))
        assert settings.public_view()["s3_payload_signed"] is False
        async with FileStore(settings) as store:
            small = await store.upload_file(os.urandom(100_000), filename="small.bin")
            large = await store.upload_file(big)
            puts = [h for method, _, h in proxy.requests if method == "PUT"]
            assert len(puts) >= 3  # the small object, then at least two parts
            assert {h["x-amz-content-sha256"] for h in puts} == {"UNSIGNED-PAYLOAD"}
            store.memory.clear()
            store.disk.evict(large.sha256)
            out = await store.download_file(large.file_id)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == large.sha256
            assert s3.object_keys(bucket) == sorted(
                [storage_key(small.sha256), storage_key(large.sha256)]
            )

        proxy.requests.clear()
        signing = prod_settings(
            home,
            pg_url,
            s3,
            bucket,
            s3_endpoint=s3.endpoint_via(proxy.url),
            s3_sign_payload="always",
        )
        async with FileStore(signing) as store:
            payload = os.urandom(50_000)
            signed = await store.upload_file(payload, filename="signed.bin")
            puts = [h for method, _, h in proxy.requests if method == "PUT"]
            assert [h["x-amz-content-sha256"] for h in puts] == [
                hashlib.sha256(payload).hexdigest()
            ]
            store.memory.clear()
            store.disk.evict(signed.sha256)
            assert await store.read_bytes(signed.file_id) == payload
    finally:
        proxy.stop()


async def test_a_server_that_refuses_unsigned_bodies_gets_an_actionable_error(
    home: Path, pg_url: str, moto: S3Server
) -> None:
    """Some S3-compatible servers refuse ``UNSIGNED-PAYLOAD``. The upload fails at once
    (a refusal is not an outage: no retries) with a clear error naming the setting that
    fixes it, nothing is half-stored, and with ``FILETIER_S3_SIGN_PAYLOAD=always`` the
    same upload goes through."""
    from reliability.proxy import FaultProxy

    bucket = moto.create_bucket()
    proxy = FaultProxy(moto.endpoint).start()
    try:
        settings = prod_settings(
            home, pg_url, moto, bucket, s3_endpoint=proxy.url, storage_retry_attempts=4
        )
        payload = os.urandom(20_000)
        async with FileStore(settings) as store:
            kept = await store.upload_file(b"stored before", filename="kept.txt")
            proxy.requests.clear()
            proxy.fail_next(
                10,
                400,
                method="PUT",
                code="InvalidRequest",
                message="UNSIGNED-PAYLOAD is not allowed on this server",
            )
            started = time.monotonic()
            with pytest.raises(StorageRefusedError) as refused:
                await store.upload_file(payload, filename="new.bin")
            assert "set FILETIER_S3_SIGN_PAYLOAD=always" in str(refused.value)
            assert [m for m, _, _ in proxy.requests if m == "PUT"] == ["PUT"]  # no retry
            assert time.monotonic() - started < 2  # no backoff either
            proxy.clear()
            listed = await store.list(limit=10)
            assert [r.file_id for r in listed.items] == [kept.file_id]
            assert moto.object_keys(bucket) == [storage_key(kept.sha256)]
            store.memory.clear()
            store.disk.evict(kept.sha256)
            assert await store.read_bytes(kept.file_id) == b"stored before"
        signing = prod_settings(
            home, pg_url, moto, bucket, s3_endpoint=proxy.url, s3_sign_payload="always"
        )
        async with FileStore(signing) as store:
            done = await store.upload_file(payload, filename="new.bin")
            assert await store.read_bytes(done.file_id) == payload
    finally:
        proxy.stop()


async def test_small_content_is_put_first_and_again_is_deduplicated(
    home: Path, pg_url: str, s3: S3Server
) -> None:
    """Small content on a store that honours put-if-absent is sent at once: a conditional
    PUT, no HEAD before or after. The same bytes again get "already exists" from the
    store, and are deduplicated (one object, no byte counted as written). Supabase
    Storage ignores conditional writes: there a HEAD still comes first, so an existing
    object is never overwritten."""
    from reliability.proxy import FaultProxy

    bucket = s3.create_bucket()
    proxy = FaultProxy(s3.endpoint).start()
    try:
        settings = prod_settings(home, pg_url, s3, bucket, s3_endpoint=s3.endpoint_via(proxy.url))
        payload = os.urandom(4096)
        async with FileStore(settings) as store:
            await store.upload_file(b"warm", filename="warm.bin")
            proxy.requests.clear()
            first = await store.upload_file(payload, filename="first.bin")
            sent = [(method, headers) for method, _, headers in proxy.requests]
            methods = [method for method, _ in sent]
            if s3.name == "supabase":
                assert methods[0] == "HEAD" and "PUT" in methods, methods
            else:
                assert methods == ["PUT"], methods
                assert sent[0][1].get("if-none-match") == "*"
            assert first.deduplicated is False and first.bytes_written == 4096
            again = await store.upload_file(payload, filename="again.bin")
            assert again.deduplicated is True and again.bytes_written == 0
            assert again.file_id != first.file_id
            assert s3.object_keys(bucket).count(storage_key(first.sha256)) == 1
            store.memory.clear()
            store.disk.evict(first.sha256)
            assert await store.read_bytes(again.file_id) == payload
            assert await store.read_bytes(first.file_id) == payload
    finally:
        proxy.stop()


async def test_two_processes_group_committing_the_same_contents_lose_nothing(
    tmp_path: Path, pg_url: str, s3: S3Server
) -> None:
    """Two processes of sixteen tasks each upload the same sequence of small contents
    to one database and bucket: their batches lock the same blob rows and quota rows at
    once, from different sessions. Neither deadlocks or fails, and every acknowledged
    upload is listed and reads back as the bytes it named."""
    from tests.support.procs import Child, all_records

    bucket = s3.create_bucket()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=pg_url,
        FILETIER_FSYNC="0",
        FILETIER_BOOKKEEPING_FLUSH_SECONDS="0.05",
        FILETIER_OWNER_QUOTA_FILES="100000",  # batches take the owner's quota lock too
        PYTHONDONTWRITEBYTECODE="1",
        **s3.env(bucket),
    )
    acknowledged: dict[str, str] = {}
    children: list[Child] = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        env_n = {**env, "FILETIER_HOME": str(home), "FILE_CACHE_DIR": str(home / "cache")}
        children.append(Child("small_uploads_worker", "--seed", "7", env=env_n, cwd=home))
    try:
        for child in children:
            child.expect("ready")
        for _ in range(120):
            for child in children:
                message = child.expect("uploaded")
                acknowledged[message["file_id"]] = message["sha256"]
        for child in children:
            code = child.kill()
            assert code == -signal.SIGKILL, f"worker failed: {child.stderr()}"
            assert "deadlock" not in child.stderr().lower()
            for message in child.messages():
                if message.get("event") == "uploaded":
                    acknowledged[message["file_id"]] = message["sha256"]
    finally:
        for child in children:
            child.close()
    settings = prod_settings(tmp_path / "check", pg_url, s3, bucket)
    async with FileStore(settings) as store:
        kept = {str(r.file_id): r.sha256 for r in await all_records(store)}
        assert set(acknowledged) <= set(kept)
        for file_id, sha256 in acknowledged.items():
            assert kept[file_id] == sha256
            data = await store.read_bytes(file_id)
            assert hashlib.sha256(data).hexdigest() == sha256
    # The two made the same contents (shared rows were contended), each stored once; an
    # object without a row is an upload the kill cut short (gc's to collect).
    assert len(set(kept.values())) < len(kept)
    assert {storage_key(sha) for sha in kept.values()} <= set(s3.object_keys(bucket))
