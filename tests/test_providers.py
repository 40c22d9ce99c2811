"""Provider copies through the real ``openai`` SDK, over HTTP, against the loopback provider.

What is promised (``filetier.providers.uploads``): each content is uploaded at most once
per provider account and purpose; a recorded copy is answered with no network call;
limits refuse a file before any byte is sent; faults are retried within bounds and end
as the most specific :class:`filetier.ProviderError`, never showing the API key;
extracted text is cached and never passed off as the original bytes; deleting the last
file with some content deletes its provider copies, now or at the next
``sync_providers``. Every assertion is on what the provider saw (its request log and
counters) and on what filetier recorded (file records, ``provider_file_uploads``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore, NotFoundError
from filetier.errors import (
    OriginalNotAvailableError,
    ProviderAuthError,
    ProviderError,
    ProviderLimitError,
    ProviderNotConfiguredError,
    ProviderRateLimitedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedPurposeError,
)
from testbed.provider_server import ProviderServer
from tests.support.providers import ATTEMPTS, KEY, copies, provider_settings, put

# Distinctive, so any leak into a message or a log line is found by substring search.
WRONG_KEY = "sk-kimi-wrong-secret-0d4e8b6a"


@pytest.fixture(scope="module")
def running() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as provider:
        yield provider


@pytest.fixture
def server(running: ProviderServer) -> Iterator[ProviderServer]:
    running.reset()
    yield running
    running.reset()  # also aborts requests still sleeping in an injected delay


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
async def pstore(home: Path, server: ProviderServer, out: Path) -> AsyncIterator[FileStore]:
    async with FileStore(provider_settings(home, server)) as opened:
        yield opened


def copy_named(home: Path, provider_file_id: str) -> dict[str, Any] | None:
    found = [r for r in copies(home) if r["provider_file_id"] == provider_file_id]
    return found[0] if found else None


def secret_free(text: str) -> bool:
    return KEY not in text and WRONG_KEY not in text


# ------------------------------------------------------------------ get_provider_file_id


async def test_first_call_uploads_and_second_call_sends_nothing(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"quarterly report\n" * 10)
    first = await pstore.get_provider_file_id(fid, "kimi")
    assert first.uploaded is True
    assert server.upload_count == 1
    assert server.file_bytes(first.provider_file_id) == b"quarterly report\n" * 10
    assert (await pstore.stat(fid)).provider_file_ids == {"kimi": first.provider_file_id}
    row = copy_named(home, first.provider_file_id)
    assert row is not None and row["status"] == "active" and row["purpose"] == "file-extract"

    seen = server.requests
    second = await pstore.get_provider_file_id(fid, "kimi")
    assert second.uploaded is False
    assert second.provider_file_id == first.provider_file_id
    assert server.requests == seen  # not even a lookup


async def test_identical_bytes_in_two_files_share_one_upload(
    pstore: FileStore, server: ProviderServer
) -> None:
    data = b"same content, two names\n" * 20
    a, b = await put(pstore, data, "a.txt"), await put(pstore, data, "b.txt")
    first = await pstore.get_provider_file_id(a, "kimi")
    second = await pstore.get_provider_file_id(b, "kimi")
    assert (first.uploaded, second.uploaded) == (True, False)
    assert second.provider_file_id == first.provider_file_id
    assert server.upload_count == 1
    for fid in (a, b):
        assert (await pstore.stat(fid)).provider_file_ids == {"kimi": first.provider_file_id}


async def test_other_purposes_get_their_own_copy_under_their_own_key(
    pstore: FileStore, server: ProviderServer
) -> None:
    fid = await put(pstore, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "pic.png")
    extract = await pstore.get_provider_file_id(fid, "kimi")
    image = await pstore.get_provider_file_id(fid, "kimi", "image")
    assert image.uploaded is True and image.purpose == "image"
    assert image.provider_file_id != extract.provider_file_id
    assert server.upload_count == 2
    assert server.files[image.provider_file_id]["purpose"] == "image"
    assert (await pstore.stat(fid)).provider_file_ids == {
        "kimi": extract.provider_file_id,
        "kimi:image": image.provider_file_id,
    }
    again = await pstore.get_provider_file_id(fid, "kimi", "image")
    assert (again.provider_file_id, again.uploaded) == (image.provider_file_id, False)
    assert server.upload_count == 2


async def test_unsupported_purpose_is_refused_before_anything_is_sent(
    pstore: FileStore, server: ProviderServer
) -> None:
    fid = await put(pstore, b"batch lines\n")
    with pytest.raises(UnsupportedPurposeError) as caught:
        await pstore.get_provider_file_id(fid, "kimi", "batch")
    assert "batch" in str(caught.value) and "file-extract" in str(caught.value)
    assert server.requests == []
    assert (await pstore.stat(fid)).provider_file_ids == {}


async def test_file_over_the_per_file_limit_is_refused_before_anything_is_sent(
    home: Path, server: ProviderServer, out: Path
) -> None:
    settings = provider_settings(home, server, provider_limits="kimi.max_file_bytes=1000")
    async with FileStore(settings) as store:
        small = await put(store, b"s" * 1000, "small.txt")
        big = await put(store, b"b" * 1001, "big.txt")
        with pytest.raises(ProviderLimitError) as caught:
            await store.get_provider_file_id(big, "kimi")
        assert server.requests == []
        message = str(caught.value)
        assert "kimi" in message and "1,000" in message and "1,001" in message
        assert (await store.get_provider_file_id(small, "kimi")).uploaded is True
        assert server.upload_count == 1


async def test_provider_without_a_key_names_the_variable_to_set(
    home: Path, server: ProviderServer, out: Path
) -> None:
    async with FileStore(provider_settings(home, server, kimi_api_key=None)) as store:
        fid = await put(store, b"text\n")
        with pytest.raises(ProviderNotConfiguredError) as caught:
            await store.get_provider_file_id(fid, "kimi")
        assert "KIMI_API_KEY" in str(caught.value)
        with pytest.raises(ProviderNotConfiguredError) as unknown:
            await store.get_provider_file_id(fid, "claude")
        assert "claude" in str(unknown.value) and "kimi" in str(unknown.value)
    assert server.requests == []


async def test_verify_reuploads_once_a_copy_the_provider_forgot(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"will expire at the provider\n")
    first = await pstore.get_provider_file_id(fid, "kimi")
    assert (await pstore.get_provider_file_id(fid, "kimi", verify=True)).uploaded is False
    assert server.upload_count == 1

    assert server.forget(first.provider_file_id)
    renewed = await pstore.get_provider_file_id(fid, "kimi", verify=True)
    assert renewed.uploaded is True
    assert renewed.provider_file_id != first.provider_file_id
    assert server.upload_count == 2
    assert set(server.files) == {renewed.provider_file_id}
    assert (await pstore.stat(fid)).provider_file_ids == {"kimi": renewed.provider_file_id}
    active = [r for r in copies(home) if r["status"] == "active"]
    assert [r["provider_file_id"] for r in active] == [renewed.provider_file_id]

    seen = server.requests
    again = await pstore.get_provider_file_id(fid, "kimi")
    assert again.provider_file_id == renewed.provider_file_id
    assert server.requests == seen


# ------------------------------------------------------------------------------ faults


async def test_429_with_retry_after_is_honoured_then_succeeds(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"rate limited once\n")
    server.fail_next(1, 429, retry_after=0.2)
    started = time.monotonic()
    result = await pstore.get_provider_file_id(fid, "kimi")
    assert time.monotonic() - started >= 0.2
    assert result.uploaded is True
    assert server.upload_count == 1
    assert [(m, s) for m, _, s in server.requests] == [("POST", 429), ("POST", 200)]
    assert [r["provider_file_id"] for r in copies(home)] == [result.provider_file_id]


async def test_persistent_429_ends_as_rate_limited_with_nothing_recorded(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"always rate limited\n")
    server.fail_next(10, 429)
    with pytest.raises(ProviderRateLimitedError) as caught:
        await pstore.get_provider_file_id(fid, "kimi")
    assert server.request_count("POST", "/files") == ATTEMPTS
    assert server.upload_count == 0
    assert copies(home) == []
    assert (await pstore.stat(fid)).provider_file_ids == {}
    message = str(caught.value)
    assert "kimi" in message and "try again later" in message and secret_free(message)


async def test_a_retry_after_beyond_the_wait_budget_fails_at_once(
    pstore: FileStore, server: ProviderServer
) -> None:
    fid = await put(pstore, b"come back in a minute\n")
    server.fail_next(1, 429, retry_after=60)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimitedError) as caught:
        await pstore.get_provider_file_id(fid, "kimi")
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 60
    assert "60" in str(caught.value)
    assert server.request_count() == 1 and server.upload_count == 0


async def test_one_500_is_retried_and_succeeds(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"one server error\n")
    server.fail_next(1, 500)
    result = await pstore.get_provider_file_id(fid, "kimi")
    assert result.uploaded is True
    assert [(m, s) for m, _, s in server.requests] == [("POST", 500), ("POST", 200)]
    assert server.upload_count == 1
    assert len(copies(home)) == 1


async def test_persistent_503_ends_as_unavailable(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"provider down\n")
    server.fail_next(20, 503)
    with pytest.raises(ProviderUnavailableError) as caught:
        await pstore.get_provider_file_id(fid, "kimi")
    assert server.request_count("POST", "/files") == ATTEMPTS
    assert server.upload_count == 0 and copies(home) == []
    message = str(caught.value)
    assert "kimi" in message and "503" in message and secret_free(message)


async def test_a_slow_provider_times_out_within_the_bound(
    home: Path, server: ProviderServer, out: Path
) -> None:
    settings = provider_settings(
        home, server, provider_timeout_seconds=1, provider_retry_attempts=1
    )
    async with FileStore(settings) as store:
        fid = await put(store, b"slow\n")
        server.set_delay(3)
        started = time.monotonic()
        with pytest.raises(ProviderTimeoutError) as caught:
            await store.get_provider_file_id(fid, "kimi")
        elapsed = time.monotonic() - started
        server.set_delay(0)
        assert 0.9 <= elapsed < 2.5
        assert "kimi" in str(caught.value) and secret_free(str(caught.value))
        assert copies(home) == []


async def test_a_wrong_key_is_an_auth_error_that_does_not_show_the_key(
    home: Path, server: ProviderServer, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FileStore(provider_settings(home, server, kimi_api_key=WRONG_KEY)) as store:
        fid = await put(store, b"secret stuff\n")
        with pytest.raises(ProviderAuthError) as caught:
            await store.get_provider_file_id(fid, "kimi")
    message = str(caught.value)
    assert "KIMI_API_KEY" in message and "kimi" in message
    assert secret_free(message) and secret_free(repr(caught.value))
    assert [(m, s) for m, _, s in server.requests] == [("POST", 401)]  # not retried
    assert server.upload_count == 0 and copies(home) == []
    assert caplog.records  # the SDK and httpx did log at DEBUG
    assert secret_free(caplog.text)


async def test_full_quota_evicts_the_least_recently_used_copy_first(
    home: Path, server: ProviderServer, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = provider_settings(home, server, provider_limits="kimi.max_files=2")
    async with FileStore(settings) as store:
        fids = [await put(store, f"file number {i}\n".encode(), f"{i}.txt") for i in range(3)]
        ids = [(await store.get_provider_file_id(fid, "kimi")).provider_file_id for fid in fids]
        assert server.upload_count == 3
        assert set(server.files) == {ids[1], ids[2]}
        oldest = copy_named(home, ids[0])
        assert oldest is not None and oldest["status"] == "deleted"
        assert (await store.stat(fids[0])).provider_file_ids == {}
        assert (await store.stat(fids[2])).provider_file_ids == {"kimi": ids[2]}
        # The evicted content comes back on demand (evicting the next oldest).
        back = await store.get_provider_file_id(fids[0], "kimi")
        assert back.uploaded is True and back.provider_file_id not in ids
        assert set(server.files) == {ids[2], back.provider_file_id}
    assert secret_free(caplog.text)


async def test_the_providers_own_refusals_are_limit_errors_with_nothing_recorded(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    """The provider's real limits may be tighter than the documented ones filetier knows."""
    server.configure(max_file_bytes=100)
    big = await put(pstore, b"x" * 101, "big.txt")
    with pytest.raises(ProviderLimitError) as too_large:
        await pstore.get_provider_file_id(big, "kimi")
    assert "too large" in str(too_large.value)

    server.configure(max_file_bytes=1000, max_files=1)
    server.seed_file("someone-elses.txt", b"already there")
    small = await put(pstore, b"small\n", "small.txt")
    with pytest.raises(ProviderLimitError) as full:
        await pstore.get_provider_file_id(small, "kimi")
    assert "quota" in str(full.value) and secret_free(str(full.value))
    assert server.upload_count == 0 and copies(home) == []
    assert server.request_count("POST", "/files") == 2  # refusals are not retried


async def test_key_never_appears_in_debug_logs_across_a_faulty_session(
    pstore: FileStore, server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fid = await put(pstore, b"logged session\n")
    server.fail_next(1, 429, retry_after=0.05)
    server.fail_next(1, 500, path_contains="/content")
    await pstore.get_provider_file_id(fid, "kimi")
    await pstore.get_file_text(fid, "kimi")
    await pstore.ask_file(fid, "what is it?", "kimi")
    assert server.upload_count == 1
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert secret_free(caplog.text)


# ---------------------------------------------------------------------- extracted text


async def test_text_is_the_providers_extraction_and_cached_after(
    pstore: FileStore, server: ProviderServer
) -> None:
    body = "# Minutes\n\nThe budget was approved. Ünïcödé survives.\n"
    fid = await put(pstore, body.encode(), "minutes.md")
    first = await pstore.get_file_text(fid, "kimi")
    assert first.text == body
    assert first.cached is False
    assert first.provider_file_id in server.files
    assert server.upload_count == 1
    assert server.request_count("GET", f"/files/{first.provider_file_id}/content") == 1

    seen = server.requests
    second = await pstore.get_file_text(fid, "kimi")
    assert (second.text, second.cached) == (body, True)
    assert server.requests == seen
    # The cached answer names the same provider copy as the first one.
    assert second.provider_file_id == first.provider_file_id


async def test_text_of_a_copy_the_provider_lost_reuploads_exactly_once(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    body = "expired at the provider\n"
    fid = await put(pstore, body.encode())
    old = await pstore.get_provider_file_id(fid, "kimi")
    server.forget(old.provider_file_id)
    result = await pstore.get_file_text(fid, "kimi")
    assert result.text == body
    assert server.upload_count == 2
    assert result.provider_file_id != old.provider_file_id
    assert set(server.files) == {result.provider_file_id}
    assert (await pstore.stat(fid)).provider_file_ids == {"kimi": result.provider_file_id}
    statuses = {r["provider_file_id"]: r["status"] for r in copies(home)}
    assert statuses == {result.provider_file_id: "active"} or statuses == {
        old.provider_file_id: "deleted",
        result.provider_file_id: "active",
    }


async def test_text_of_a_binary_file_is_text_never_the_original_bytes(
    pstore: FileStore, server: ProviderServer
) -> None:
    data = b"%PDF-1.7\n\xff\xfe\x00\x80binary\x9c\xe2 body\n"
    fid = await put(pstore, data, "doc.pdf")
    result = await pstore.get_file_text(fid, "kimi")
    assert isinstance(result.text, str)
    assert "\ufffd" in result.text and "binary" in result.text
    assert result.text.encode("utf-8", "surrogateescape") != data
    assert server.file_bytes(result.provider_file_id) == data  # what was sent: the original


async def test_a_provider_that_returns_no_content_is_a_clear_provider_error(
    home: Path, server: ProviderServer, out: Path
) -> None:
    server.configure(returns_content=False)
    settings = provider_settings(
        home, server, kimi_api_key=None, glm_api_key=server.api_key, glm_base_url=server.base_url
    )
    async with FileStore(settings) as store:
        fid = await put(store, b"glm will not hand this back\n")
        with pytest.raises(ProviderError) as caught:
            await store.get_file_text(fid, "glm")
        message = str(caught.value)
        assert "glm" in message and secret_free(message)
        # Nothing false was cached: a second call asks again, without uploading again.
        with pytest.raises(ProviderError):
            await store.get_file_text(fid, "glm")
        assert server.upload_count == 1
        assert server.request_count("GET", "/files") == 2
        # The upload for file-extract was accepted: blaming the purpose sends the user
        # after the wrong fix (and the CLI exits 2, "invalid input", for a valid command).
        assert not isinstance(caught.value, UnsupportedPurposeError), message


# ----------------------------------------------------------------------------- ask_file


async def test_ask_sends_one_system_message_per_file_then_the_question(
    pstore: FileStore, server: ProviderServer
) -> None:
    one = await put(pstore, b"alpha facts\n", "alpha.txt")
    two = await put(pstore, b"beta facts\n", "beta.txt")
    result = await pstore.ask_file([one, two], "compare them", "kimi")
    assert result.answer == "answer to compare them using 2 system messages"
    assert [str(f) for f in result.file_ids] == [one, two]

    (chat,) = server.chat_requests
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "system", "user"]
    extractions = [json.loads(m["content"]) for m in chat["messages"][:2]]
    assert [e["content"] for e in extractions] == ["alpha facts\n", "beta facts\n"]
    assert [e["filename"] for e in extractions] == ["alpha.txt", "beta.txt"]
    assert chat["messages"][2]["content"] == "compare them"
    records = [await pstore.stat(f) for f in (one, two)]
    assert result.provider_file_ids == [r.provider_file_ids["kimi"] for r in records]
    assert server.upload_count == 2

    seen = len(server.requests)
    again = await pstore.ask_file([two, one], "and now?", "kimi")
    assert again.answer == "answer to and now? using 2 system messages"
    assert server.upload_count == 2
    assert server.requests[seen:] == [("POST", "/v1/chat/completions", 200)]
    latest = server.chat_requests[-1]["messages"]
    assert [json.loads(m["content"])["content"] for m in latest[:2]] == [
        "beta facts\n",
        "alpha facts\n",
    ]


# ---------------------------------------------------------- downloads by provider file id


async def test_download_by_provider_file_id_is_local_and_counted(
    pstore: FileStore, server: ProviderServer, home: Path, out: Path
) -> None:
    data = b"our own bytes, not the provider's text\n" * 50
    fid = await put(pstore, data, "ours.txt")
    pid = (await pstore.get_provider_file_id(fid, "kimi")).provider_file_id
    seen = server.requests
    path = await pstore.download_file(pid, out / "by-provider-id.txt")
    assert path.read_bytes() == data
    assert server.requests == seen
    row = copy_named(home, pid)
    assert row is not None
    assert row["download_count"] == 1 and row["last_downloaded_at"] is not None
    await pstore.download_file(pid, out / "again.txt")
    row = copy_named(home, pid)
    assert row is not None and row["download_count"] == 2


async def test_a_foreign_provider_file_offers_its_text_not_bytes(
    pstore: FileStore, server: ProviderServer, home: Path, out: Path
) -> None:
    seeded = server.seed_file("contract.pdf", b"%PDF-1.4 ...", text="The contract says yes.")
    report = await pstore.sync_providers(dry_run=False)
    assert [(a.kind, a.provider_file_id) for a in report.actions] == [
        ("record_foreign", seeded["id"])
    ]
    row = copy_named(home, seeded["id"])
    assert row is not None and row["status"] == "foreign" and row["file_hash"] is None

    seen = server.requests
    with pytest.raises(OriginalNotAvailableError) as caught:
        await pstore.download_file(seeded["id"], out / "contract.pdf")
    message = str(caught.value)
    assert seeded["id"] in message
    assert "get_file_text" in message and "filetier text" in message
    assert not (out / "contract.pdf").exists()
    assert server.requests == seen
    assert isinstance(caught.value, FileNotFoundError)


async def test_following_the_advice_for_a_foreign_file_gives_its_text(
    pstore: FileStore, server: ProviderServer
) -> None:
    """The OriginalNotAvailableError message says: ask for its text instead."""
    seeded = server.seed_file("contract.pdf", b"%PDF-1.4 ...", text="The contract says yes.")
    await pstore.sync_providers(dry_run=False)
    with pytest.raises(OriginalNotAvailableError):
        await pstore.download_file(seeded["id"])
    result = await pstore.get_file_text(seeded["id"], "kimi")
    assert result.text == "The contract says yes."
    assert server.upload_count == 0


# ------------------------------------------------------------------------------- delete


async def test_delete_keeps_a_shared_copy_and_removes_the_last_one(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    data = b"shared by two files\n"
    a, b = await put(pstore, data, "a.txt"), await put(pstore, data, "b.txt")
    pid = (await pstore.get_provider_file_id(a, "kimi")).provider_file_id
    await pstore.get_file_text(b, "kimi")

    await pstore.delete(a)
    assert pid in server.files
    assert server.request_count("DELETE") == 0
    assert (await pstore.stat(b)).provider_file_ids == {"kimi": pid}
    assert copy_named(home, pid) is not None

    result = await pstore.delete(b)
    assert result.blob_deleted is True
    assert pid not in server.files
    assert server.request_count("DELETE", f"/files/{pid}") == 1
    assert copies(home) == []
    with sqlite3.connect(home / "filetier.db") as conn:
        assert conn.execute("SELECT count(*) FROM provider_extracted_text").fetchone() == (0,)


async def test_delete_while_the_provider_is_down_finishes_at_the_next_sync(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"delete me later\n")
    pid = (await pstore.get_provider_file_id(fid, "kimi")).provider_file_id
    # Every attempt of the delete fails; the faults are used up by it.
    server.fail_next(ATTEMPTS, 503, method="DELETE")
    result = await pstore.delete(fid)
    assert result.blob_deleted is True
    with pytest.raises(NotFoundError):
        await pstore.stat(fid)
    assert server.request_count("DELETE") == ATTEMPTS
    assert pid in server.files
    row = copy_named(home, pid)
    assert row is not None and row["status"] == "pending_delete"

    report = await pstore.sync_providers(dry_run=False)
    assert [(a.kind, a.provider_file_id) for a in report.actions] == [("delete_at_provider", pid)]
    assert pid not in server.files
    assert copies(home) == []
    assert (await pstore.sync_providers()).actions == []


# ------------------------------------------------------------------------------- sync


async def test_sync_plans_without_changing_anything_then_applies(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    lost_fid = await put(pstore, b"the provider lost this\n", "lost.txt")
    lost = (await pstore.get_provider_file_id(lost_fid, "kimi")).provider_file_id
    server.forget(lost)
    gone_fid = await put(pstore, b"deleted while down\n", "gone.txt")
    gone = (await pstore.get_provider_file_id(gone_fid, "kimi")).provider_file_id
    server.fail_next(ATTEMPTS, 503, method="DELETE")
    await pstore.delete(gone_fid)
    foreign = server.seed_file("console-upload.txt", b"uploaded in the web console")["id"]
    kept_fid = await put(pstore, b"all in order\n", "kept.txt")
    kept = (await pstore.get_provider_file_id(kept_fid, "kimi")).provider_file_id

    rows_before, files_before = copies(home), server.files
    log_start = len(server.requests)
    plan = await pstore.sync_providers()
    assert plan.dry_run is True and plan.providers == ["kimi"]
    assert sorted((a.kind, a.provider_file_id) for a in plan.actions) == sorted(
        [("forget_missing", lost), ("delete_at_provider", gone), ("record_foreign", foreign)]
    )
    assert all(a.provider == "kimi" and a.detail for a in plan.actions)
    assert copies(home) == rows_before
    assert server.files == files_before
    assert {m for m, _, _ in server.requests[log_start:]} == {"GET"}
    assert (await pstore.stat(lost_fid)).provider_file_ids == {"kimi": lost}

    applied = await pstore.sync_providers(dry_run=False)
    assert applied.dry_run is False
    assert sorted((a.kind, a.provider_file_id) for a in applied.actions) == sorted(
        (a.kind, a.provider_file_id) for a in plan.actions
    )
    statuses = {r["provider_file_id"]: r["status"] for r in copies(home)}
    assert statuses == {lost: "deleted", foreign: "foreign", kept: "active"}
    assert set(server.files) == {foreign, kept}
    assert (await pstore.stat(lost_fid)).provider_file_ids == {}
    assert (await pstore.stat(kept_fid)).provider_file_ids == {"kimi": kept}

    assert (await pstore.sync_providers()).actions == []
    # The lost content is uploaded again when next asked for.
    again = await pstore.get_provider_file_id(lost_fid, "kimi")
    assert again.uploaded is True and again.provider_file_id in server.files


async def test_sync_forgets_a_pending_delete_the_provider_already_dropped(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    fid = await put(pstore, b"deleted twice over\n")
    pid = (await pstore.get_provider_file_id(fid, "kimi")).provider_file_id
    server.fail_next(ATTEMPTS, 503, method="DELETE")
    await pstore.delete(fid)
    assert server.forget(pid)  # removed in the provider's console meanwhile

    plan = await pstore.sync_providers()
    await pstore.sync_providers(dry_run=False)
    assert copies(home) == [], "the row stays pending_delete for a file nobody holds"
    assert (await pstore.sync_providers()).actions == []
    assert [a.provider_file_id for a in plan.actions] == [pid]


async def test_storing_content_again_while_its_delete_is_pending_leaves_no_orphan(
    pstore: FileStore, server: ProviderServer, home: Path
) -> None:
    data = b"deleted, then stored again before the provider came back\n"
    first = await put(pstore, data, "first.txt")
    old = (await pstore.get_provider_file_id(first, "kimi")).provider_file_id
    server.fail_next(ATTEMPTS, 503, method="DELETE")
    await pstore.delete(first)

    second = await put(pstore, data, "second.txt")
    current = (await pstore.get_provider_file_id(second, "kimi")).provider_file_id
    await pstore.sync_providers(dry_run=False)

    # One copy of this content at the provider, known as ours (not "foreign").
    statuses = {r["provider_file_id"]: r["status"] for r in copies(home)}
    assert (await pstore.stat(second)).provider_file_ids == {"kimi": current}
    assert set(server.files) == {current}, f"old copy {old} orphaned; rows: {statuses}"
    assert statuses == {current: "active"}
