"""Gemini copies through the real ``google-genai`` SDK, over HTTP, against the loopback
Gemini server (``testbed/provider_servers/gemini.py``), which speaks the resumable upload protocol,
moves files from PROCESSING to ACTIVE, expires them after 48 hours on a clock the tests
control, and answers 403 PERMISSION_DENIED for files it no longer has.

Assertions are on what the server saw (its request log, its files) and on what filetier
recorded (``provider_file_uploads``), as a user of the library would notice them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from filetier import FileStore, NotFoundError, Settings
from filetier.errors import (
    IntegrityError,
    ProviderAuthError,
    ProviderLimitError,
    ProviderNotConfiguredError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)
from filetier.providers.gemini import sha256_hex
from filetier.providers.registry import build_provider
from testbed.provider_servers.gemini import GeminiServer
from tests.support.providers import copies, put

KEY = "AIza-gemini-test-secret-5c1d9e7a3b"
HOUR = 3600.0


@pytest.fixture(scope="module")
def running() -> Iterator[GeminiServer]:
    with GeminiServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def gemini(running: GeminiServer) -> Iterator[GeminiServer]:
    running.reset()
    yield running
    running.reset()


def gemini_settings(home: Path, server: GeminiServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        "gemini_api_key": KEY,
        "gemini_base_url": server.url,
        "provider_retry_attempts": 3,
        "provider_max_retry_wait_seconds": 5,
        "provider_timeout_seconds": 5,
        "gemini_processing_timeout_seconds": 5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def gstore(home: Path, gemini: GeminiServer) -> AsyncIterator[FileStore]:
    async with FileStore(gemini_settings(home, gemini)) as opened:
        yield opened


def uploads_seen(server: GeminiServer) -> list[tuple[str, str, int]]:
    return [r for r in server.requests if r[1].startswith("/upload/")]


# ------------------------------------------------------------------------- upload once


async def test_resumable_upload_once_then_answered_with_no_call(
    gstore: FileStore, gemini: GeminiServer, home: Path
) -> None:
    data = b"gemini reads this\n" * 1000
    fid = await put(gstore, data)
    first = await gstore.get_provider_file_id(fid, "gemini")
    assert first.uploaded is True
    assert first.provider_file_id.startswith("files/")
    assert gemini.file_bytes(first.provider_file_id) == data
    # start, then one "upload, finalize" to the session URL
    assert [(m, p) for m, p, _ in uploads_seen(gemini)] == [
        ("POST", "/upload/v1beta/files"),
        ("POST", "/upload/v1beta/files?session"),
    ]
    [row] = copies(home)
    assert row["status"] == "active" and row["provider"] == "gemini"
    recorded = datetime.fromisoformat(row["expires_at"]).replace(tzinfo=UTC)
    assert abs((recorded - datetime.now(UTC)) - timedelta(hours=48)) < timedelta(minutes=1)
    assert first.expires_at is not None

    seen = gemini.requests
    second = await gstore.get_provider_file_id(fid, "gemini")
    assert (second.uploaded, second.provider_file_id) == (False, first.provider_file_id)
    assert gemini.requests == seen  # not even a lookup


async def test_a_large_file_is_sent_in_chunks_from_disk(
    gstore: FileStore, gemini: GeminiServer
) -> None:
    data = bytes(range(256)) * (36 * 1024 + 7)  # ~9.2 MB: more than one 8 MB chunk
    fid = await put(gstore, data, "big.bin")
    result = await gstore.get_provider_file_id(fid, "gemini")
    assert gemini.file_bytes(result.provider_file_id) == data
    assert len(gemini.chunk_sizes) == 2 and max(gemini.chunk_sizes) <= 8 * 1024 * 1024


async def test_concurrent_requests_upload_once(gstore: FileStore, gemini: GeminiServer) -> None:
    fid = await put(gstore, b"wanted by many at once\n" * 100)
    results = await asyncio.gather(*(gstore.get_provider_file_id(fid, "gemini") for _ in range(8)))
    assert gemini.upload_count == 1
    assert len({r.provider_file_id for r in results}) == 1
    assert sum(r.uploaded for r in results) == 1


async def test_gemini_has_no_purposes_so_content_goes_there_once(gstore: FileStore) -> None:
    fid = await put(gstore, b"purpose-free\n")
    with pytest.raises(UnsupportedPurposeError, match="file-extract"):
        await gstore.get_provider_file_id(fid, "gemini", "assistants")


# ------------------------------------------------------------------ processing states


async def test_a_processing_file_is_waited_for_until_active(
    home: Path, gemini: GeminiServer
) -> None:
    gemini.configure(processing_seconds=0.6)
    settings = gemini_settings(home, gemini)
    async with FileStore(settings) as store:
        fid = await put(store, b"takes a moment to process\n")
        result = await store.get_provider_file_id(fid, "gemini")
    polls = [r for r in gemini.requests if r[0] == "GET" and result.provider_file_id[6:] in r[1]]
    assert polls, "the upload returned while the file was still PROCESSING"
    assert copies(home)[0]["status"] == "active"


async def test_processing_past_the_bound_fails_and_leaves_nothing_behind(
    home: Path, gemini: GeminiServer
) -> None:
    gemini.configure(processing_seconds=60)
    settings = gemini_settings(home, gemini, gemini_processing_timeout_seconds=0.5)
    async with FileStore(settings) as store:
        fid = await put(store, b"never ready\n")
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError, match="still processing"):
            await store.get_provider_file_id(fid, "gemini")
        assert time.monotonic() - started < 4
    assert gemini.file_names() == []  # deleted, not left to count against the quota
    assert copies(home) == []


async def test_a_failed_file_is_deleted_and_not_recorded(
    gstore: FileStore, gemini: GeminiServer, home: Path
) -> None:
    gemini.configure(processing_seconds=0.2, fail_processing=True)
    fid = await put(gstore, b"unprocessable\n")
    with pytest.raises(ProviderRequestError, match="could not process"):
        await gstore.get_provider_file_id(fid, "gemini")
    assert gemini.file_names() == []
    assert copies(home) == []


async def test_a_copy_whose_sha256_differs_is_deleted_and_not_recorded(
    gstore: FileStore, gemini: GeminiServer, home: Path
) -> None:
    gemini.configure(corrupt_hash=True)
    fid = await put(gstore, b"garbled on the way\n")
    with pytest.raises(IntegrityError, match="SHA-256"):
        await gstore.get_provider_file_id(fid, "gemini")
    assert gemini.file_names() == []
    assert copies(home) == []


def test_sha256_hash_is_read_in_both_encodings_seen() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert sha256_hex(base64.b64encode(digest).decode()) == digest.hex()
    assert sha256_hex(base64.b64encode(digest.hex().encode()).decode()) == digest.hex()
    assert sha256_hex("not base64!") is None


# ---------------------------------------------------------------------------- expiry


def age_copy(home: Path, provider_file_id: str, *, uploaded_ago: float, left: float) -> None:
    """Make a recorded copy look as if uploaded ``uploaded_ago`` s ago with ``left`` s to go."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(home / "filetier.db") as conn:
        conn.execute(
            "UPDATE provider_file_uploads SET uploaded_at = ?, last_used_at = ?, expires_at = ? "
            "WHERE provider_file_id = ?",
            (
                (now - timedelta(seconds=uploaded_ago)).isoformat(sep=" "),
                (now - timedelta(seconds=uploaded_ago)).isoformat(sep=" "),
                (now + timedelta(seconds=left)).isoformat(sep=" "),
                provider_file_id,
            ),
        )


async def test_a_copy_with_less_life_than_the_margin_is_uploaded_again_once(
    home: Path, gemini: GeminiServer
) -> None:
    settings = gemini_settings(home, gemini, provider_reuse_margin_seconds=HOUR)
    async with FileStore(settings) as store:
        fid = await put(store, b"uploaded almost two days ago\n")
        first = await store.get_provider_file_id(fid, "gemini")
        age_copy(home, first.provider_file_id, uploaded_ago=47.5 * HOUR, left=0.5 * HOUR)
        renewed = await asyncio.gather(
            *(store.get_provider_file_id(fid, "gemini") for _ in range(4))
        )
        assert len({r.provider_file_id for r in renewed}) == 1
        assert renewed[0].provider_file_id != first.provider_file_id
        assert gemini.upload_count == 2
        [info] = await store.provider_copies(fid)
        assert info.remaining_seconds is not None and info.remaining_seconds > 47 * HOUR

        # With more than the margin left, the same copy is reused with no call.
        age_copy(home, renewed[0].provider_file_id, uploaded_ago=40 * HOUR, left=8 * HOUR)
        seen = gemini.requests
        again = await store.get_provider_file_id(fid, "gemini")
        assert (again.uploaded, again.provider_file_id) == (False, renewed[0].provider_file_id)
        assert gemini.requests == seen


async def test_a_copy_made_to_live_less_than_the_margin_is_still_reused_for_half_its_life(
    home: Path, gemini: GeminiServer
) -> None:
    gemini.configure(ttl_seconds=0.5 * HOUR)
    settings = gemini_settings(home, gemini, provider_reuse_margin_seconds=HOUR)
    async with FileStore(settings) as store:
        fid = await put(store, b"short-lived at the provider\n")
        first = await store.get_provider_file_id(fid, "gemini")
        again = await store.get_provider_file_id(fid, "gemini")
        assert (again.uploaded, again.provider_file_id) == (False, first.provider_file_id)
        age_copy(home, first.provider_file_id, uploaded_ago=0.4 * HOUR, left=0.1 * HOUR)
        late = await store.get_provider_file_id(fid, "gemini")
        assert late.uploaded is True
    assert gemini.upload_count == 2


async def test_an_expired_copy_is_uploaded_again_exactly_once(
    home: Path, gemini: GeminiServer
) -> None:
    gemini.configure(ttl_seconds=1)
    async with FileStore(gemini_settings(home, gemini, provider_reuse_margin_seconds=0)) as store:
        fid = await put(store, b"expires in a second\n")
        first = await store.get_provider_file_id(fid, "gemini")
        await asyncio.sleep(1.2)
        gemini.configure(ttl_seconds=48 * HOUR)
        again = await asyncio.gather(*(store.get_provider_file_id(fid, "gemini") for _ in range(4)))
    assert gemini.upload_count == 2
    assert {r.provider_file_id for r in again} != {first.provider_file_id}
    assert len({r.provider_file_id for r in again}) == 1


async def test_a_copy_gemini_answers_403_for_is_uploaded_again_once(
    gstore: FileStore, gemini: GeminiServer
) -> None:
    fid = await put(gstore, b"forgotten by google\n")
    first = await gstore.get_provider_file_id(fid, "gemini")
    gemini.advance(49 * HOUR)  # Google's clock: the file is gone, 403 from now on
    renewed = await gstore.get_provider_file_id(fid, "gemini", verify=True)
    assert renewed.uploaded is True and renewed.provider_file_id != first.provider_file_id
    assert (
        "GET",
        f"/v1beta/{first.provider_file_id}",
        403,
    ) in gemini.requests
    assert gemini.upload_count == 2
    assert (await gstore.stat(fid)).provider_file_ids == {"gemini": renewed.provider_file_id}


async def test_file_info_and_stats_show_each_copys_remaining_life(
    gstore: FileStore, gemini: GeminiServer
) -> None:
    fid = await put(gstore, b"how long has it got\n")
    result = await gstore.get_provider_file_id(fid, "gemini")
    [info] = await gstore.provider_copies(fid)
    assert info.provider_file_id == result.provider_file_id
    assert info.remaining_seconds is not None
    assert 47.9 * HOUR < info.remaining_seconds <= 48 * HOUR
    stats = await gstore.stats()
    assert [c.provider_file_id for c in stats.provider_copies] == [result.provider_file_id]


async def test_another_owner_learns_nothing_of_a_copy(
    gstore: FileStore, gemini: GeminiServer
) -> None:
    fid = await put(gstore, b"alice's report\n")
    await gstore.get_provider_file_id(fid, "gemini")
    bob = gstore.as_owner("bob")
    assert (await bob.stats()).provider_copies == []
    with pytest.raises(NotFoundError):
        await bob.provider_copies(fid)


async def test_sync_reconciles_expired_missing_and_unrecorded_expiry(
    home: Path, gemini: GeminiServer
) -> None:
    gemini.configure(ttl_seconds=1)
    async with FileStore(gemini_settings(home, gemini, provider_reuse_margin_seconds=0)) as store:
        expiring = await store.get_provider_file_id(await put(store, b"one\n"), "gemini")
        gemini.configure(ttl_seconds=48 * HOUR)
        lost = await store.get_provider_file_id(await put(store, b"two\n"), "gemini")
        kept = await store.get_provider_file_id(await put(store, b"three\n"), "gemini")
        await asyncio.sleep(1.2)
        assert gemini.forget(lost.provider_file_id)
        with sqlite3.connect(home / "filetier.db") as conn:
            conn.execute(
                "UPDATE provider_file_uploads SET expires_at = NULL WHERE provider_file_id = ?",
                (kept.provider_file_id,),
            )

        plan = await store.sync_providers(["gemini"])
        kinds = {a.provider_file_id: a.kind for a in plan.actions}
        assert kinds == {
            expiring.provider_file_id: "forget_expired",
            lost.provider_file_id: "forget_missing",
            kept.provider_file_id: "record_expiry",
        }
        await store.sync_providers(["gemini"], dry_run=False)
        assert (await store.sync_providers(["gemini"])).actions == []
    rows = {r["provider_file_id"]: r for r in copies(home)}
    assert rows[expiring.provider_file_id]["status"] == "deleted"
    assert rows[lost.provider_file_id]["status"] == "deleted"
    assert rows[kept.provider_file_id]["expires_at"] is not None


# ---------------------------------------------------------------------------- faults


async def test_429_with_retry_after_is_honoured_then_succeeds(
    gstore: FileStore, gemini: GeminiServer
) -> None:
    gemini.fail_next(1, 429, retry_after=1, path_contains="/upload/")
    fid = await put(gstore, b"rate limited once\n")
    started = time.monotonic()
    result = await gstore.get_provider_file_id(fid, "gemini")
    assert time.monotonic() - started >= 0.9
    assert result.uploaded is True and gemini.upload_count == 1


async def test_persistent_429_ends_as_rate_limited_with_nothing_recorded(
    gstore: FileStore, gemini: GeminiServer, home: Path
) -> None:
    gemini.fail_next(10, 429, retry_after=0, path_contains="/upload/")
    fid = await put(gstore, b"always limited\n")
    with pytest.raises(ProviderRateLimitedError):
        await gstore.get_provider_file_id(fid, "gemini")
    assert len(uploads_seen(gemini)) == 3  # provider_retry_attempts, no more
    assert copies(home) == []


async def test_persistent_503_ends_as_unavailable(gstore: FileStore, gemini: GeminiServer) -> None:
    gemini.fail_next(10, 503, path_contains="/upload/")
    fid = await put(gstore, b"google is down\n")
    with pytest.raises(ProviderUnavailableError, match="HTTP 503"):
        await gstore.get_provider_file_id(fid, "gemini")


async def test_a_wrong_key_is_an_auth_error_that_never_shows_a_key(
    home: Path, gemini: GeminiServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "AIza-wrong-secret-77e1c0"
    async with FileStore(gemini_settings(home, gemini, gemini_api_key=wrong)) as store:
        fid = await put(store, b"who are you\n")
        with caplog.at_level("DEBUG"), pytest.raises(ProviderAuthError) as caught:
            await store.get_provider_file_id(fid, "gemini")
    assert "GEMINI_API_KEY" in str(caught.value)
    for text in (str(caught.value), caplog.text):
        assert wrong not in text and KEY not in text


async def test_a_missing_extra_is_a_one_line_error_naming_it(
    home: Path, gemini: GeminiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if google-genai were not installed: the adapter module must be imported afresh,
    # and `from google import genai` must find neither the attribute nor the module.
    import google

    monkeypatch.delitem(sys.modules, "filetier.providers.gemini", raising=False)
    monkeypatch.delattr(google, "genai", raising=False)
    monkeypatch.setitem(sys.modules, "google.genai", None)  # import now fails
    with pytest.raises(ProviderNotConfiguredError) as caught:
        build_provider("gemini", gemini_settings(home, gemini))
    assert "filetier[gemini]" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_text_extraction_is_refused_clearly(gstore: FileStore) -> None:
    fid = await put(gstore, b"no text from gemini\n")
    with pytest.raises(ProviderRequestError, match="neither the contents nor an extracted"):
        await gstore.get_file_text(fid, "gemini")


# ------------------------------------------------------------------------ interfaces


async def test_cli_mcp_and_http_show_each_copys_remaining_life(
    home: Path, gemini: GeminiServer
) -> None:
    from mcp.client import Client

    from filetier.interfaces.app import build_app
    from filetier.interfaces.mcp import build_server
    from tests.support.http import ALICE, BOB, TOKENS, ThreadServer

    settings = gemini_settings(home, gemini, api_tokens=TOKENS)
    async with FileStore(settings) as opened:
        alice = opened.as_owner("alice")
        fid = await put(alice, b"shown everywhere\n")
        copy = await alice.get_provider_file_id(fid, "gemini")

    with ThreadServer(build_app(settings)) as live:
        mine = httpx.get(f"{live.url}/v1/files/{fid}", headers={"Authorization": f"Bearer {ALICE}"})
        theirs = httpx.get(f"{live.url}/v1/files/{fid}", headers={"Authorization": f"Bearer {BOB}"})
    assert mine.status_code == 200
    [shown] = mine.json()["provider_copies"]
    assert shown["provider_file_id"] == copy.provider_file_id
    assert 47.9 * HOUR < shown["remaining_seconds"] <= 48 * HOUR
    assert theirs.status_code == 404 and copy.provider_file_id not in theirs.text

    async with Client(build_server(settings.model_copy(update={"owner": "alice"}))) as client:
        result = await client.call_tool("file_info", {"file_id": fid})
    assert result.structured_content is not None
    [info] = result.structured_content["provider_copies"]
    assert info["provider_file_id"] == copy.provider_file_id
    assert info["remaining_seconds"] > 47.9 * HOUR

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "GEMINI_", "SUPABASE_")) and k != "DATABASE_URL"
    }
    env.update(
        FILETIER_HOME=str(home),
        FILETIER_FSYNC="0",
        FILETIER_OWNER="alice",
        GEMINI_API_KEY=KEY,
        GEMINI_BASE_URL=gemini.url,
    )
    cli = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]
    stat = subprocess.run([*cli, "stat", fid], capture_output=True, text=True, env=env, timeout=60)
    assert stat.returncode == 0, stat.stderr
    assert f"gemini file-extract {copy.provider_file_id} 47h" in stat.stdout
    stats = subprocess.run([*cli, "stats"], capture_output=True, text=True, env=env, timeout=60)
    assert stats.returncode == 0, stats.stderr
    assert copy.provider_file_id in stats.stdout and "47h" in stats.stdout
    assert KEY not in stat.stdout + stat.stderr + stats.stdout + stats.stderr


async def test_stored_bytes_that_rotted_are_caught_by_gemini_sha256(
    home: Path, gemini: GeminiServer
) -> None:
    settings = gemini_settings(home, gemini)
    async with FileStore(settings) as store:
        uploaded = await store.upload_file(b"will rot on disk\n" * 100, filename="r.txt")
        stored = settings.objects_dir / "sha256" / uploaded.sha256[:2] / uploaded.sha256[2:4]
        target = stored / uploaded.sha256
        target.chmod(0o644)
        with target.open("r+b") as handle:
            handle.write(b"W")
        with pytest.raises(IntegrityError, match="SHA-256"):
            await store.get_provider_file_id(uploaded.file_id, "gemini")
    assert gemini.file_names() == []
    assert copies(home) == []


async def test_limits_are_checked_before_sending_and_lru_copies_make_room(
    home: Path, gemini: GeminiServer
) -> None:
    limits = "gemini.file-extract=1500,gemini.max_total_bytes=2500"
    async with FileStore(gemini_settings(home, gemini, provider_limits=limits)) as store:
        too_big = await put(store, b"x" * 1501, "big.txt")
        with pytest.raises(ProviderLimitError, match="at most 1,500 bytes"):
            await store.get_provider_file_id(too_big, "gemini")
        assert gemini.requests == []

        old = await store.get_provider_file_id(await put(store, b"a" * 1200, "a.txt"), "gemini")
        new = await store.get_provider_file_id(await put(store, b"b" * 1200, "b.txt"), "gemini")
        newest = await store.get_provider_file_id(await put(store, b"c" * 1200, "c.txt"), "gemini")
    # 20 GB per project, scaled down: the least recently used copy was deleted first.
    assert sorted(gemini.file_names()) == sorted([new.provider_file_id, newest.provider_file_id])
    statuses = {r["provider_file_id"]: r["status"] for r in copies(home)}
    assert statuses[old.provider_file_id] == "deleted"


async def test_a_gemini_outage_never_blocks_another_provider(
    home: Path, gemini: GeminiServer
) -> None:
    from testbed.provider_server import ProviderServer

    gemini.fail_next(100, 503)
    with ProviderServer(api_key="sk-kimi-beside-gemini") as kimi:
        settings = gemini_settings(
            home, gemini, kimi_api_key=kimi.api_key, kimi_base_url=kimi.base_url
        )
        async with FileStore(settings) as store:
            fid = await put(store, b"wanted by both providers\n")
            for name in ("gemini", "kimi"):
                store.providers.provider(name)  # SDK imports happen once, outside the race
            finished: dict[str, float] = {}
            started = time.monotonic()

            async def ask(provider: str) -> Any:
                try:
                    return await store.get_provider_file_id(fid, provider)
                finally:
                    finished[provider] = time.monotonic() - started

            down, up = await asyncio.gather(ask("gemini"), ask("kimi"), return_exceptions=True)
    assert isinstance(down, ProviderUnavailableError)
    assert not isinstance(up, BaseException) and up.uploaded is True
    assert kimi.upload_count == 1
    assert finished["kimi"] < finished["gemini"]  # not queued behind gemini's retries


async def test_chat_goes_through_generate_content(home: Path, gemini: GeminiServer) -> None:
    client = build_provider("gemini", gemini_settings(home, gemini))
    try:
        answer = await client.chat(
            client.default_model,
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello?"}],
        )
    finally:
        await client.close()
    assert answer.content == "echo: hello?"
    assert answer.usage["prompt_token_count"] == 3
    assert (
        "POST",
        f"/v1beta/models/{client.default_model}:generateContent",
        200,
    ) in gemini.requests
