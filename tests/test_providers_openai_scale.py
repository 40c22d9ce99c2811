"""OpenAI at scale through the real ``openai`` SDK against the loopback provider:
``expires_after`` sent and recorded, and files over the threshold sent through the
multipart Uploads API in bounded parts, in parallel, retried part by part and cancelled
cleanly when a part fails for good. The threshold and part size are set small here so
no test needs a gigabyte; the code path is the one a 8 GB file takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore, Settings
from filetier.errors import IntegrityError, ProviderUnavailableError
from testbed.provider_server import ProviderServer
from tests.support.providers import copies

KEY = "sk-openai-test-secret-3e8a1f0c"
KB = 1024
PURPOSES = ("user_data", "assistants", "vision", "batch", "fine-tune")


@pytest.fixture(scope="module")
def running() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as provider:
        yield provider


@pytest.fixture
def server(running: ProviderServer) -> Iterator[ProviderServer]:
    running.reset()
    running.configure(allowed_purposes=PURPOSES)
    yield running
    running.reset()


def openai_settings(home: Path, server: ProviderServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        "openai_api_key": KEY,
        "openai_base_url": server.base_url,
        "provider_retry_attempts": 3,
        "provider_max_retry_wait_seconds": 5,
        "provider_timeout_seconds": 5,
        "openai_uploads_threshold_bytes": 64 * KB,
        "openai_upload_part_bytes": 16 * KB,
        "openai_upload_parallel": 3,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def ostore(home: Path, server: ProviderServer) -> AsyncIterator[FileStore]:
    async with FileStore(openai_settings(home, server)) as opened:
        yield opened


async def put(store: FileStore, data: bytes, name: str = "data.jsonl") -> str:
    return str((await store.upload_file(data, filename=name)).file_id)


def big(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


# ------------------------------------------------------------------------ expires_after


async def test_expires_after_is_sent_and_recorded_and_reuse_respects_it(
    home: Path, server: ProviderServer
) -> None:
    settings = openai_settings(home, server, openai_expires_after_seconds=7200)
    async with FileStore(settings) as store:
        fid = await put(store, b'{"prompt": "hi"}\n')
        first = await store.get_provider_file_id(fid, "openai", "user_data")
        remote = server.files[first.provider_file_id]
        assert remote["expires_at"] == remote["created_at"] + 7200
        [row] = copies(home)
        recorded = datetime.fromisoformat(row["expires_at"]).replace(tzinfo=UTC)
        assert int(recorded.timestamp()) == remote["expires_at"]
        [info] = await store.provider_copies(fid)
        assert info.remaining_seconds is not None and 7100 < info.remaining_seconds <= 7200

        # Two hours of life and a one-hour margin: reused with no call.
        seen = server.requests
        assert (await store.get_provider_file_id(fid, "openai", "user_data")).uploaded is False
        assert server.requests == seen

        # OpenAI deleted it on time: the next verified request uploads it again, once.
        server.advance(7300)
        renewed = await store.get_provider_file_id(fid, "openai", "user_data", verify=True)
        assert renewed.uploaded is True and renewed.provider_file_id != first.provider_file_id
        assert server.upload_count == 2


async def test_without_expires_after_nothing_is_sent_and_no_expiry_recorded(
    ostore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(ostore, b"kept until deleted\n")
    result = await ostore.get_provider_file_id(fid, "openai", "assistants")
    assert server.files[result.provider_file_id]["expires_at"] is None
    assert copies(home)[0]["expires_at"] is None
    assert (await ostore.provider_copies(fid))[0].remaining_seconds is None


@pytest.mark.parametrize("purpose", PURPOSES)
async def test_each_documented_purpose_is_accepted(
    ostore: FileStore, server: ProviderServer, purpose: str
) -> None:
    fid = await put(ostore, b"for any purpose\n")
    result = await ostore.get_provider_file_id(fid, "openai", purpose)
    assert server.files[result.provider_file_id]["purpose"] == purpose


# ------------------------------------------------------------------------ Uploads API


async def test_a_file_over_the_threshold_goes_in_parallel_parts(
    ostore: FileStore, server: ProviderServer, home: Path
) -> None:
    server.uploads.part_seconds = 0.15  # long enough for parallel parts to overlap
    data = big(100 * KB + 5)  # 7 parts of at most 16 KB
    fid = await put(ostore, data, "train.jsonl")
    result = await ostore.get_provider_file_id(fid, "openai", "fine-tune")
    assert result.uploaded is True
    assert server.file_bytes(result.provider_file_id) == data
    assert server.uploads.part_sizes and max(server.uploads.part_sizes) <= 16 * KB
    assert len(server.uploads.part_sizes) == 7
    assert 2 <= server.uploads.max_in_flight <= 3  # parallel, and never more than asked
    assert server.uploads.statuses() == ["completed"]
    assert server.request_count("POST", "/files") == 0  # not the single-request endpoint
    assert [r["provider_file_id"] for r in copies(home)] == [result.provider_file_id]

    seen = server.requests
    assert (await ostore.get_provider_file_id(fid, "openai", "fine-tune")).uploaded is False
    assert server.requests == seen


async def test_a_small_file_uses_the_files_endpoint(
    ostore: FileStore, server: ProviderServer
) -> None:
    fid = await put(ostore, big(10 * KB))
    await ostore.get_provider_file_id(fid, "openai", "batch")
    assert server.request_count("POST", "/files") == 1
    assert server.request_count("POST", "/uploads") == 0


async def test_a_failed_part_is_retried_without_resending_the_rest(
    ostore: FileStore, server: ProviderServer
) -> None:
    data = big(80 * KB)  # 5 parts
    server.fail_next(1, 500, path_contains="/parts")
    fid = await put(ostore, data)
    result = await ostore.get_provider_file_id(fid, "openai", "batch")
    assert server.file_bytes(result.provider_file_id) == data
    parts = [status for m, path, status in server.requests if path.endswith("/parts")]
    assert sorted(parts) == [200] * 5 + [500]  # each part sent once, the failed one twice
    assert len(server.uploads.uploads) == 1  # resumed in the same Upload, not restarted


async def test_a_part_that_keeps_failing_cancels_the_upload(
    ostore: FileStore, server: ProviderServer, home: Path
) -> None:
    server.fail_next(50, 503, path_contains="/parts")
    fid = await put(ostore, big(80 * KB))
    with pytest.raises(ProviderUnavailableError, match="part"):
        await ostore.get_provider_file_id(fid, "openai", "batch")
    assert server.uploads.statuses() == ["cancelled"]
    assert server.files == {}
    assert copies(home) == []


async def test_expires_after_applies_to_multipart_uploads_too(
    home: Path, server: ProviderServer
) -> None:
    settings = openai_settings(home, server, openai_expires_after_seconds=3600 * 5)
    async with FileStore(settings) as store:
        fid = await put(store, big(70 * KB))
        result = await store.get_provider_file_id(fid, "openai", "user_data")
    remote = server.files[result.provider_file_id]
    assert remote["expires_at"] == remote["created_at"] + 5 * 3600
    assert copies(home)[0]["expires_at"] is not None


async def test_bytes_that_no_longer_match_their_sha256_cancel_the_upload(
    home: Path, server: ProviderServer
) -> None:
    settings = openai_settings(home, server)
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(big(70 * KB), filename="rotted.bin")
        stored = settings.objects_dir / "sha256" / uploaded.sha256[:2] / uploaded.sha256[2:4]
        target = stored / uploaded.sha256
        target.chmod(0o644)
        with target.open("r+b") as handle:  # bit rot in the stored object
            handle.seek(100)
            handle.write(b"\x00\x01\x02")
        with pytest.raises(IntegrityError, match="SHA-256"):
            await store.get_provider_file_id(uploaded.file_id, "openai", "batch")
    assert server.uploads.statuses() == ["cancelled"]
    assert server.files == {}
    assert copies(home) == []


@pytest.mark.parametrize("where", ["disk", "memory", "primary"])
async def test_multipart_reads_from_a_remote_primary_with_the_caches_empty_or_warm(
    home: Path, tmp_path: Path, server: ProviderServer, where: str
) -> None:
    """A primary that is not read in place: the parts come from the disk cache (filled
    from the primary when empty) or, for content only in memory, a private temp file."""
    settings = openai_settings(home, server, primary_url=f"file://{tmp_path / 'remote'}")
    data = big(90 * KB)
    async with FileStore(settings) as store:
        fid = await put(store, data, "remote.bin")
        sha256 = (await store.stat(fid)).sha256
        if where != "disk":
            await store.cleanup_cache(max_size_mb=0)  # no disk-cache copy on this host
            assert store.disk.lookup(sha256) is None
        if where == "primary":
            store.memory.evict(sha256)
        if where == "memory":
            assert store.memory.get(sha256) == data  # only this process's memory has it
        result = await store.get_provider_file_id(fid, "openai", "assistants")
        temp_dir = store.disk.tmp
    assert server.file_bytes(result.provider_file_id) == data
    assert server.uploads.statuses() == ["completed"]
    assert [p for p in temp_dir.rglob("*") if p.is_file()] == []  # no temp file left
