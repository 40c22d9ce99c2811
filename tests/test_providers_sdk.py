"""Anthropic and Mistral copies through their official SDKs, against loopback servers.

One contract, run against both providers: a content is uploaded at most once per
account (also by concurrent callers), a recorded copy is answered with no network call,
a copy the provider forgot is uploaded again exactly once, 429 honours ``Retry-After``,
limits refuse before a byte is sent, a refused key is an auth error that never shows the
key, and one provider's outage does not hold up the other. ``ask_file`` refers to the
uploaded copies instead of sending text. Every assertion is on what the server saw and
on what filetier recorded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from filetier import FileStore, Settings
from filetier.errors import (
    OriginalNotAvailableError,
    ProviderAuthError,
    ProviderLimitError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)
from testbed.provider_servers._loopback import LoopbackProvider, StoredFile
from testbed.provider_servers.anthropic import AnthropicServer
from testbed.provider_servers.mistral import MistralServer
from tests.support.providers import copies, put

ANTHROPIC_KEY = "sk-ant-test-secret-4c1d9e7a2b"
MISTRAL_KEY = "mistral-test-secret-8e2f6a0c3d"
ATTEMPTS = 3


@dataclass
class Harness:
    provider: str
    server: LoopbackProvider
    purpose: str  # what the copies are recorded under

    def settings(self, home: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": home,
            "fsync": False,
            "bookkeeping_flush_seconds": 0.05,
            f"{self.provider}_api_key": self.server.api_key,
            f"{self.provider}_base_url": self.server.url,
            "provider_retry_attempts": ATTEMPTS,
            "provider_max_retry_wait_seconds": 5,
            "provider_timeout_seconds": 2,
        }
        values.update(overrides)
        return Settings(**values)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, LoopbackProvider]]:
    with AnthropicServer(ANTHROPIC_KEY) as anthropic, MistralServer(MISTRAL_KEY) as mistral:
        yield {"anthropic": anthropic, "mistral": mistral}


@pytest.fixture(params=["anthropic", "mistral"])
def harness(
    request: pytest.FixtureRequest, servers: dict[str, LoopbackProvider]
) -> Iterator[Harness]:
    name = request.param
    server = servers[name]
    server.reset()
    yield Harness(name, server, "file-extract" if name == "anthropic" else "ocr")
    server.reset()


@pytest.fixture
async def pstore(home: Path, harness: Harness) -> AsyncIterator[FileStore]:
    async with FileStore(harness.settings(home)) as opened:
        yield opened


def uploads(server: LoopbackProvider) -> list[int]:
    return [
        status
        for method, path, status in server.requests
        if (method, path) == ("POST", "/v1/files")
    ]


# ------------------------------------------------------------------ upload once, reuse


async def test_first_call_uploads_and_the_second_sends_nothing(
    pstore: FileStore, harness: Harness, home: Path
) -> None:
    server = harness.server
    fid = await put(pstore, b"quarterly report\n" * 10)
    first = await pstore.get_provider_file_id(fid, harness.provider)
    assert first.uploaded is True and first.purpose == harness.purpose
    assert server.file_bytes(first.provider_file_id) == b"quarterly report\n" * 10
    (row,) = copies(home)
    assert (row["provider"], row["purpose"], row["status"]) == (
        harness.provider,
        harness.purpose,
        "active",
    )
    assert row["provider_file_id"] == first.provider_file_id

    seen = server.requests
    second = await pstore.get_provider_file_id(fid, harness.provider)
    assert (second.uploaded, second.provider_file_id) == (False, first.provider_file_id)
    assert server.requests == seen  # not even a lookup


async def test_concurrent_callers_share_one_upload(pstore: FileStore, harness: Harness) -> None:
    fids = [await put(pstore, b"same bytes\n", f"copy-{i}.txt") for i in range(3)]
    harness.server.set_delay(0.2)  # every caller arrives while the upload is in flight
    results = await asyncio.gather(
        *(pstore.get_provider_file_id(fids[i % 3], harness.provider) for i in range(8))
    )
    assert len({r.provider_file_id for r in results}) == 1
    assert harness.server.upload_count == 1
    assert sum(r.uploaded for r in results) >= 1


async def test_a_copy_the_provider_forgot_is_uploaded_again_exactly_once(
    pstore: FileStore, harness: Harness, home: Path
) -> None:
    fid = await put(pstore, b"will be forgotten\n")
    first = await pstore.get_provider_file_id(fid, harness.provider)
    assert harness.server.forget(first.provider_file_id)

    again = await pstore.get_provider_file_id(fid, harness.provider, verify=True)
    assert again.uploaded is True and again.provider_file_id != first.provider_file_id
    assert harness.server.upload_count == 2
    statuses = {r["provider_file_id"]: r["status"] for r in copies(home)}
    assert statuses == {again.provider_file_id: "active"}  # the lost copy's row is replaced

    seen = len(harness.server.requests)
    third = await pstore.get_provider_file_id(fid, harness.provider, verify=True)
    assert third.uploaded is False and third.provider_file_id == again.provider_file_id
    assert [m for m, _, _ in harness.server.requests[seen:]] == ["GET"]  # one check, no upload


# ------------------------------------------------------------------ faults and limits


async def test_429_with_retry_after_is_honoured_then_succeeds(
    pstore: FileStore, harness: Harness
) -> None:
    fid = await put(pstore, b"rate limited once\n")
    harness.server.fail_next(1, 429, retry_after=0.3, path_contains="/v1/files")
    started = time.monotonic()
    result = await pstore.get_provider_file_id(fid, harness.provider)
    assert time.monotonic() - started >= 0.3
    assert result.uploaded is True
    assert uploads(harness.server) == [429, 200]


async def test_persistent_429_ends_as_rate_limited_with_nothing_recorded(
    pstore: FileStore, harness: Harness, home: Path
) -> None:
    fid = await put(pstore, b"always rate limited\n")
    harness.server.fail_next(10, 429, retry_after=0.05)
    with pytest.raises(ProviderRateLimitedError) as caught:
        await pstore.get_provider_file_id(fid, harness.provider)
    assert uploads(harness.server) == [429] * ATTEMPTS
    assert copies(home) == []
    assert harness.provider in str(caught.value)


async def test_a_retry_after_beyond_the_wait_budget_fails_at_once(
    pstore: FileStore, harness: Harness
) -> None:
    fid = await put(pstore, b"come back in a minute\n")
    harness.server.fail_next(1, 429, retry_after=60)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimitedError) as caught:
        await pstore.get_provider_file_id(fid, harness.provider)
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 60
    assert uploads(harness.server) == [429]


async def test_a_500_is_retried_and_a_lasting_503_is_unavailable(
    pstore: FileStore, harness: Harness, home: Path
) -> None:
    fid = await put(pstore, b"one server error\n")
    harness.server.fail_next(1, 500)
    assert (await pstore.get_provider_file_id(fid, harness.provider)).uploaded is True
    assert uploads(harness.server) == [500, 200]

    other = await put(pstore, b"provider down\n")
    harness.server.fail_next(20, 503)
    with pytest.raises(ProviderUnavailableError):
        await pstore.get_provider_file_id(other, harness.provider)
    assert len(copies(home)) == 1


async def test_a_slow_provider_times_out_within_the_bound(home: Path, harness: Harness) -> None:
    settings = harness.settings(home, provider_timeout_seconds=0.3, provider_retry_attempts=2)
    async with FileStore(settings) as store:
        fid = await put(store, b"slow answer\n")
        store.providers.provider(harness.provider)  # its SDK's import is not the provider's time
        harness.server.set_delay(2)
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError) as caught:
            await store.get_provider_file_id(fid, harness.provider)
        elapsed = time.monotonic() - started
        harness.server.set_delay(0)
    assert elapsed < 1.9  # two attempts of 0.3 s and a short backoff, not the 2 s delay
    assert harness.provider in str(caught.value)
    assert copies(home) == []


async def test_a_file_over_the_per_file_limit_is_refused_before_anything_is_sent(
    home: Path, harness: Harness
) -> None:
    settings = harness.settings(home, provider_limits=f"{harness.provider}.max_file_bytes=1KB")
    async with FileStore(settings) as store:
        fid = await put(store, b"x" * 2000)
        with pytest.raises(ProviderLimitError) as caught:
            await store.get_provider_file_id(fid, harness.provider)
    assert "1,000 bytes" in str(caught.value)
    assert harness.server.requests == []


async def test_the_account_quota_evicts_the_least_recently_used_copy_first(
    home: Path, harness: Harness
) -> None:
    settings = harness.settings(home, provider_limits=f"{harness.provider}.max_files=2")
    async with FileStore(settings) as store:
        old, mid, new = [await put(store, f"file {i}\n".encode(), f"{i}.txt") for i in range(3)]
        first = await store.get_provider_file_id(old, harness.provider)
        await store.get_provider_file_id(mid, harness.provider)
        third = await store.get_provider_file_id(new, harness.provider)
    assert third.uploaded is True
    assert first.provider_file_id not in harness.server.file_ids
    assert len(harness.server.file_ids) == 2
    assert ("DELETE", f"/v1/files/{first.provider_file_id}", 200) in harness.server.requests


async def test_a_refused_key_is_an_auth_error_that_never_shows_the_key(
    home: Path, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"{harness.provider}-wrong-secret-5d7e9f"
    caplog.set_level(logging.DEBUG)
    async with FileStore(harness.settings(home, **{f"{harness.provider}_api_key": wrong})) as store:
        fid = await put(store, b"who am i\n")
        with pytest.raises(ProviderAuthError) as caught:
            await store.get_provider_file_id(fid, harness.provider)
    message = str(caught.value)
    assert f"{harness.provider.upper()}_API_KEY" in message
    assert wrong not in message and wrong not in caplog.text
    assert harness.server.api_key not in caplog.text


async def test_one_providers_outage_does_not_hold_up_the_other(
    home: Path, servers: dict[str, LoopbackProvider]
) -> None:
    anthropic, mistral = servers["anthropic"], servers["mistral"]
    anthropic.reset()
    mistral.reset()
    anthropic.set_delay(1.5)  # slow, then failing: a provider in trouble
    anthropic.fail_next(20, 503)
    settings = Harness("anthropic", anthropic, "").settings(
        home,
        mistral_api_key=mistral.api_key,
        mistral_base_url=mistral.url,
        provider_timeout_seconds=5,
    )
    try:
        async with FileStore(settings) as store:
            fid = await put(store, b"needed by both\n")
            for name in ("anthropic", "mistral"):
                store.providers.provider(name)  # SDK imports are not part of the timing
            slow = asyncio.create_task(store.get_provider_file_id(fid, "anthropic"))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            fast = await store.get_provider_file_id(fid, "mistral", "ocr")
            assert time.monotonic() - started < 1.0
            assert fast.uploaded is True
            with pytest.raises(ProviderUnavailableError):
                await slow
    finally:
        anthropic.reset()
        mistral.reset()


# ------------------------------------------------------------------ ask_file


async def test_ask_refers_to_uploaded_copies_and_reuses_them(
    pstore: FileStore, harness: Harness
) -> None:
    one = await put(pstore, b"alpha facts\n", "alpha.txt")
    two = await put(pstore, b"beta facts\n", "beta.txt")
    result = await pstore.ask_file([one, two], "compare them", harness.provider, model="m-1")
    assert "alpha.txt: alpha facts" in result.answer and "beta.txt: beta facts" in result.answer
    assert "compare them" in result.answer
    assert harness.server.upload_count == 2
    records = [await pstore.stat(f) for f in (one, two)]
    key = harness.provider if harness.purpose == "file-extract" else f"{harness.provider}:ocr"
    assert result.provider_file_ids == [r.provider_file_ids[key] for r in records]

    (body,) = harness.server.chat_bodies
    text = str(body)
    assert "alpha facts" not in text  # references, never the contents
    assert body["model"] == "m-1"

    again = await pstore.ask_file([two, one], "and now?", harness.provider)
    assert harness.server.upload_count == 2
    assert "and now?" in again.answer


async def test_ask_about_a_file_the_provider_forgot_uploads_it_again_once(
    pstore: FileStore, harness: Harness
) -> None:
    fid = await put(pstore, b"gone at the provider\n", "gone.txt")
    first = await pstore.ask_file([fid], "still there?", harness.provider)
    assert harness.server.forget(first.provider_file_ids[0])
    second = await pstore.ask_file([fid], "and now?", harness.provider)
    assert "gone.txt: gone at the provider" in second.answer
    assert second.provider_file_ids != first.provider_file_ids
    assert harness.server.upload_count == 2


async def test_two_files_with_the_same_lost_bytes_are_uploaded_again_once(
    pstore: FileStore, harness: Harness
) -> None:
    one = await put(pstore, b"twins\n", "one.txt")
    two = await put(pstore, b"twins\n", "two.txt")
    first = await pstore.ask_file([one, two], "same?", harness.provider)
    assert len(set(first.provider_file_ids)) == 1 and harness.server.upload_count == 1
    assert harness.server.forget(first.provider_file_ids[0])
    second = await pstore.ask_file([one, two], "still?", harness.provider)
    assert len(set(second.provider_file_ids)) == 1
    assert second.provider_file_ids != first.provider_file_ids
    assert harness.server.upload_count == 2


async def test_text_is_refused_before_anything_is_uploaded(
    pstore: FileStore, harness: Harness
) -> None:
    fid = await put(pstore, b"no text from here\n")
    with pytest.raises(ProviderRequestError) as caught:
        await pstore.get_file_text(fid, harness.provider)
    assert "ask_file" in str(caught.value)
    assert harness.server.requests == []


# ------------------------------------------------------------------ Anthropic only


@pytest.fixture
def anthropic_server(servers: dict[str, LoopbackProvider]) -> Iterator[AnthropicServer]:
    server = servers["anthropic"]
    assert isinstance(server, AnthropicServer)
    server.reset()
    yield server
    server.require_beta = False
    server.reset()


async def test_anthropic_deployments_that_need_the_beta_header_get_it(
    home: Path, anthropic_server: AnthropicServer
) -> None:
    anthropic_server.require_beta = True
    harness = Harness("anthropic", anthropic_server, "file-extract")
    async with FileStore(harness.settings(home)) as store:
        fid = await put(store, b"beta only\n")
        with pytest.raises(ProviderRequestError) as caught:
            await store.get_provider_file_id(fid, "anthropic")
        assert "anthropic-beta" in str(caught.value)
    async with FileStore(harness.settings(home, anthropic_files_beta=True)) as store:
        result = await store.get_provider_file_id(fid, "anthropic")
        answer = await store.ask_file([fid], "what is it?", "anthropic")
    assert result.uploaded is True and "beta only" in answer.answer
    assert all(
        h.get("anthropic-beta") == "files-api-2025-04-14" for h in anthropic_server.seen_headers[1:]
    )
    assert all(h.get("anthropic-version") for h in anthropic_server.seen_headers)


async def test_anthropic_expiry_is_sent_and_recorded_and_an_expired_copy_is_replaced(
    home: Path, anthropic_server: AnthropicServer
) -> None:
    harness = Harness("anthropic", anthropic_server, "file-extract")
    async with FileStore(harness.settings(home, anthropic_file_ttl_seconds=3600)) as store:
        fid = await put(store, b"short lived\n")
        first = await store.get_provider_file_id(fid, "anthropic")
        (row,) = copies(home)
        assert row["expires_at"] is not None
        stored = anthropic_server.state.get(first.provider_file_id)
        assert stored is not None and stored.expires_at is not None
        assert abs(stored.expires_at - time.time() - 3600) < 60
        # Past its expiry the recorded copy is not reused: one new upload.
        with sqlite3.connect(home / "filetier.db") as conn:
            conn.execute("UPDATE provider_file_uploads SET expires_at = '2000-01-01 00:00:00'")
        second = await store.get_provider_file_id(fid, "anthropic")
    assert second.uploaded is True and second.provider_file_id != first.provider_file_id
    assert anthropic_server.upload_count == 2


async def test_anthropic_images_are_image_blocks_and_documents_document_blocks(
    home: Path, anthropic_server: AnthropicServer
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    harness = Harness("anthropic", anthropic_server, "file-extract")
    async with FileStore(harness.settings(home)) as store:
        image = await put(store, png, "chart.png")
        doc = await put(store, b"the notes\n", "notes.txt")
        result = await store.ask_file([image, doc], "explain", "anthropic")
    (body,) = anthropic_server.chat_bodies
    blocks = body["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["image", "document", "text"]
    assert [b["source"]["type"] for b in blocks[:2]] == ["file", "file"]
    assert [b["source"]["file_id"] for b in blocks[:2]] == result.provider_file_ids
    assert "image chart.png" in result.answer


async def test_anthropic_is_never_a_source_of_original_bytes(
    home: Path, anthropic_server: AnthropicServer
) -> None:
    harness = Harness("anthropic", anthropic_server, "file-extract")
    async with FileStore(harness.settings(home)) as store:
        client = store.providers.provider("anthropic")
        assert client.returns_original_bytes is False
        with pytest.raises(ProviderRequestError):
            await client.extracted_text("file_anything")
    assert anthropic_server.requests == []


async def test_anthropic_sync_records_foreign_files_and_never_offers_their_bytes(
    home: Path, anthropic_server: AnthropicServer, tmp_path: Path
) -> None:
    foreign = StoredFile("file_foreign01", "contract.pdf", b"%PDF-1.4", time.time())
    anthropic_server.state.add(foreign)
    out = tmp_path / "out"
    out.mkdir()
    harness = Harness("anthropic", anthropic_server, "file-extract")
    async with FileStore(harness.settings(home, allowed_roots=str(out))) as store:
        report = await store.sync_providers(dry_run=False)
        assert [(a.kind, a.provider_file_id) for a in report.actions] == [
            ("record_foreign", "file_foreign01")
        ]
        with pytest.raises(OriginalNotAvailableError) as caught:
            await store.download_file("file_foreign01", out / "contract.pdf")
    message = str(caught.value)
    assert "file_foreign01" in message and "no text" in message
    assert "get_file_text" not in message
    assert not (out / "contract.pdf").exists()


# ------------------------------------------------------------------ Mistral only


@pytest.fixture
def mistral_server(servers: dict[str, LoopbackProvider]) -> Iterator[MistralServer]:
    server = servers["mistral"]
    assert isinstance(server, MistralServer)
    server.reset()
    yield server
    server.reset()


async def test_mistral_purposes_each_get_their_own_copy_and_others_are_refused(
    home: Path, mistral_server: MistralServer
) -> None:
    harness = Harness("mistral", mistral_server, "ocr")
    async with FileStore(harness.settings(home)) as store:
        fid = await put(store, b'{"prompt": "hi"}\n', "train.jsonl")
        default = await store.get_provider_file_id(fid, "mistral")  # file-extract means ocr
        ocr = await store.get_provider_file_id(fid, "mistral", "ocr")
        batch = await store.get_provider_file_id(fid, "mistral", "batch")
        tune = await store.get_provider_file_id(fid, "mistral", "fine-tune")
        with pytest.raises(UnsupportedPurposeError):
            await store.get_provider_file_id(fid, "mistral", "assistants")
        record = await store.stat(fid)
    assert default.purpose == "ocr" and ocr.provider_file_id == default.provider_file_id
    assert mistral_server.upload_count == 3
    assert {
        s.purpose for s in (mistral_server.state.get(i) for i in mistral_server.file_ids) if s
    } == {
        "ocr",
        "batch",
        "fine-tune",
    }
    assert record.provider_file_ids == {
        "mistral:ocr": ocr.provider_file_id,
        "mistral:batch": batch.provider_file_id,
        "mistral:fine-tune": tune.provider_file_id,
    }


async def test_mistral_ask_reads_the_file_through_a_signed_url(
    home: Path, mistral_server: MistralServer
) -> None:
    harness = Harness("mistral", mistral_server, "ocr")
    async with FileStore(harness.settings(home)) as store:
        fid = await put(store, b"signed contents\n", "doc.txt")
        result = await store.ask_file([fid], "summarise", "mistral")
    (body,) = mistral_server.chat_bodies
    chunks = body["messages"][0]["content"]
    assert [c["type"] for c in chunks] == ["text", "document_url"]
    assert "/signed/" in chunks[1]["document_url"]
    assert mistral_server.signed_url_count == 1
    assert "doc.txt: signed contents" in result.answer
    # The URL reads the file with no key at all.
    assert httpx.get(chunks[1]["document_url"]).content == b"signed contents\n"


# ------------------------------------------------------------------ the CLI


async def test_the_cli_asks_anthropic_and_maps_mistral_configured_by_environment(
    home: Path, servers: dict[str, LoopbackProvider]
) -> None:
    anthropic, mistral = servers["anthropic"], servers["mistral"]
    anthropic.reset()
    mistral.reset()
    async with FileStore(Settings(home=home, fsync=False)) as store:
        fid = await put(store, b"cli contents\n", "cli.txt")
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_", "ANTHROPIC_", "MISTRAL_"))
    }
    environ.pop("DATABASE_URL", None)
    environ.update(
        FILETIER_HOME=str(home),
        FILETIER_FSYNC="0",
        ANTHROPIC_API_KEY=anthropic.api_key,
        ANTHROPIC_BASE_URL=anthropic.url,
        MISTRAL_API_KEY=mistral.api_key,
        MISTRAL_BASE_URL=mistral.url,
    )
    cli = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], capture_output=True, text=True, env=environ, cwd=home, timeout=120
        )

    asked = run("ask", fid, "-p", "anthropic", "what is in it?")
    assert asked.returncode == 0, asked.stderr
    assert "document cli.txt: cli contents" in asked.stdout
    mapped = run("provider-id", fid, "mistral", "--purpose", "batch")
    assert mapped.returncode == 0, mapped.stderr
    assert "(mistral, batch, uploaded now)" in mapped.stdout
    again = run("provider-id", fid, "mistral", "--purpose", "batch")
    assert "already there: nothing sent" in again.stdout
    assert (anthropic.upload_count, mistral.upload_count) == (1, 1)
    output = asked.stdout + asked.stderr + mapped.stdout + mapped.stderr
    assert anthropic.api_key not in output and mistral.api_key not in output
    anthropic.reset()
    mistral.reset()
