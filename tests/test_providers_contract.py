"""One contract, run against every provider adapter through its official SDK.

Kimi, GLM and OpenAI (the ``openai`` SDK against ``testbed/provider_server.py``), Gemini
(``google-genai``), Anthropic (``anthropic``) and Mistral (``mistralai``) each against
their loopback server in ``testbed/provider_servers/``. An adapter is done when this suite
passes for it: a content is uploaded once (the same content asked for twice is one
request), its lifetime at the provider is reported, a copy the provider forgot (404, or
Gemini's 403) is uploaded again, deleting the file deletes the copy, a transient 5xx or
429 is retried and then succeeds, a refusal that names the caller's mistake (400, 404,
422) is an input error and is not retried, and a refused key never shows the key.

Assertions are on what each server saw and on what a user of the library gets back; the
provider-specific behaviour beyond this lives in ``test_providers*.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore, InvalidInputError, Settings
from filetier.errors import (
    ProviderAuthError,
    ProviderInputError,
    ProviderRateLimitedError,
    ProviderUnavailableError,
    mapping_for,
)
from filetier.providers.registry import build_provider
from testbed.provider_server import ProviderServer
from testbed.provider_servers._loopback import LoopbackServer
from testbed.provider_servers.anthropic import AnthropicServer
from testbed.provider_servers.gemini import GeminiServer
from testbed.provider_servers.mistral import MistralServer

ATTEMPTS = 3
HOUR = 3600
PROVIDERS = ("kimi", "glm", "openai", "gemini", "anthropic", "mistral")
KEYS = {name: f"sk-{name}-contract-secret-7f3a9c1e" for name in PROVIDERS}
# Every provider's upload is a POST to a path holding "/files" (Gemini's starts a
# resumable session at /upload/v1beta/files); nothing else is.
UPLOAD = {"path_contains": "/files", "method": "POST"}


@dataclass(frozen=True)
class Contract:
    provider: str
    server: LoopbackServer
    base_url: str
    purpose: str  # what the copies are recorded under
    lifetime: int | None  # seconds the provider keeps a copy; None: until deleted
    settings_extra: dict[str, Any]

    def settings(self, home: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": home,
            "fsync": False,
            "bookkeeping_flush_seconds": 0.05,
            f"{self.provider}_api_key": self.server.api_key,
            f"{self.provider}_base_url": self.base_url,
            "provider_retry_attempts": ATTEMPTS,
            "provider_max_retry_wait_seconds": 5,
            "provider_timeout_seconds": 5,
            **self.settings_extra,
        }
        values.update(overrides)
        return Settings(**values)

    def failed_uploads(self) -> list[int]:
        """The statuses of upload requests the server refused, in order."""
        return [
            status
            for method, path, status in self.server.requests
            if method == "POST" and "/files" in path and status >= 400
        ]


@pytest.fixture(scope="module")
def contracts() -> Iterator[dict[str, Contract]]:
    compat = {name: ProviderServer(api_key=KEYS[name]) for name in ("kimi", "glm", "openai")}
    gemini = GeminiServer(api_key=KEYS["gemini"])
    anthropic = AnthropicServer(KEYS["anthropic"])
    mistral = MistralServer(KEYS["mistral"])
    started: list[Any] = []
    try:
        for server in (*compat.values(), gemini, anthropic, mistral):
            started.append(server.start())
        yield {
            "kimi": Contract(
                "kimi", compat["kimi"], compat["kimi"].base_url, "file-extract", None, {}
            ),
            "glm": Contract("glm", compat["glm"], compat["glm"].base_url, "file-extract", None, {}),
            "openai": Contract(
                "openai",
                compat["openai"],
                compat["openai"].base_url,
                "file-extract",
                24 * HOUR,
                {"openai_expires_after_seconds": 24 * HOUR},
            ),
            "gemini": Contract(
                "gemini",
                gemini,
                gemini.url,
                "file-extract",
                48 * HOUR,
                {"gemini_processing_timeout_seconds": 5},
            ),
            "anthropic": Contract(
                "anthropic",
                anthropic,
                anthropic.url,
                "file-extract",
                2 * HOUR,
                {"anthropic_file_ttl_seconds": 2 * HOUR},
            ),
            "mistral": Contract("mistral", mistral, mistral.url, "ocr", None, {}),
        }
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture(params=PROVIDERS)
def contract(request: pytest.FixtureRequest, contracts: dict[str, Contract]) -> Iterator[Contract]:
    chosen = contracts[request.param]
    chosen.server.reset()
    yield chosen
    chosen.server.reset()


@pytest.fixture
async def store(home: Path, contract: Contract) -> AsyncIterator[FileStore]:
    async with FileStore(contract.settings(home)) as opened:
        yield opened


async def put(store: FileStore, data: bytes, name: str = "notes.txt") -> str:
    return str((await store.upload_file(data, filename=name)).file_id)


# ------------------------------------------------------------------------- upload once


async def test_the_same_content_asked_for_twice_is_one_provider_request(
    store: FileStore, contract: Contract
) -> None:
    first_fid = await put(store, b"quarterly report\n" * 50, "q3.txt")
    twin_fid = await put(store, b"quarterly report\n" * 50, "q3-copy.txt")
    first = await store.get_provider_file_id(first_fid, contract.provider)
    assert first.uploaded is True and first.purpose == contract.purpose
    assert contract.server.file_ids == [first.provider_file_id]

    seen = contract.server.requests
    again = await store.get_provider_file_id(first_fid, contract.provider)
    twin = await store.get_provider_file_id(twin_fid, contract.provider)
    assert (again.uploaded, again.provider_file_id) == (False, first.provider_file_id)
    assert (twin.uploaded, twin.provider_file_id) == (False, first.provider_file_id)
    assert contract.server.requests == seen  # not even a lookup
    assert contract.server.upload_count == 1


async def test_the_copy_reports_how_long_the_provider_keeps_it(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"how long will you keep me?\n")
    await store.get_provider_file_id(fid, contract.provider)
    (copy,) = await store.provider_copies(fid)
    assert (copy.provider, copy.status) == (contract.provider, "active")
    if contract.lifetime is None:
        assert copy.expires_at is None and copy.remaining_seconds is None
    else:
        assert copy.expires_at is not None and copy.remaining_seconds is not None
        # Kept for its lifetime from the upload, give or take the test's own time.
        assert contract.lifetime - 120 < copy.remaining_seconds <= contract.lifetime


async def test_a_copy_the_provider_forgot_is_uploaded_again_once(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"will be forgotten\n")
    first = await store.get_provider_file_id(fid, contract.provider)
    assert contract.server.forget(first.provider_file_id)

    again = await store.get_provider_file_id(fid, contract.provider, verify=True)
    assert again.uploaded is True and again.provider_file_id != first.provider_file_id
    assert contract.server.upload_count == 2
    assert contract.server.file_ids == [again.provider_file_id]


async def test_deleting_the_file_deletes_the_provider_copy(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"short-lived\n")
    copy = await store.get_provider_file_id(fid, contract.provider)
    assert contract.server.file_ids == [copy.provider_file_id]
    await store.delete(fid)
    assert contract.server.file_ids == []


async def test_the_adapter_answers_none_and_false_for_a_file_it_no_longer_has(
    home: Path, store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"looked up, then deleted\n")
    pid = (await store.get_provider_file_id(fid, contract.provider)).provider_file_id
    provider = build_provider(contract.provider, contract.settings(home))
    try:
        found = await provider.retrieve(pid)
        assert found is not None and found.id == pid
        assert pid in {f.id for f in await provider.list_files()}
        assert await provider.delete(pid) is True
        assert await provider.delete(pid) is False
        assert await provider.retrieve(pid) is None
    finally:
        await provider.close()


# ------------------------------------------------------------------------------ faults


@pytest.mark.parametrize("status", [500, 503])
async def test_a_transient_server_error_is_retried_then_succeeds(
    store: FileStore, contract: Contract, status: int
) -> None:
    fid = await put(store, b"one server error\n")
    contract.server.fail_next(1, status, **UPLOAD)
    result = await store.get_provider_file_id(fid, contract.provider)
    assert result.uploaded is True
    assert contract.failed_uploads() == [status]
    assert contract.server.upload_count == 1
    assert contract.server.file_ids == [result.provider_file_id]


async def test_a_429_honours_retry_after_then_succeeds(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"rate limited once\n")
    contract.server.fail_next(1, 429, retry_after=0.3, **UPLOAD)
    started = time.monotonic()
    result = await store.get_provider_file_id(fid, contract.provider)
    assert time.monotonic() - started >= 0.3
    assert result.uploaded is True
    assert contract.failed_uploads() == [429]
    assert contract.server.upload_count == 1


async def test_an_outage_is_tried_a_bounded_number_of_times(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"provider down\n")
    contract.server.fail_next(20, 503, **UPLOAD)
    with pytest.raises(ProviderUnavailableError) as caught:
        await store.get_provider_file_id(fid, contract.provider)
    assert contract.failed_uploads() == [503] * ATTEMPTS
    assert contract.server.upload_count == 0 and contract.server.file_ids == []
    assert await store.provider_copies(fid) == []
    assert mapping_for(caught.value).exit_code == 17


async def test_a_retry_after_beyond_the_wait_budget_fails_at_once(
    store: FileStore, contract: Contract
) -> None:
    fid = await put(store, b"come back in a minute\n")
    contract.server.fail_next(1, 429, retry_after=60, **UPLOAD)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimitedError) as caught:
        await store.get_provider_file_id(fid, contract.provider)
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after == 60
    assert contract.failed_uploads() == [429]


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_caller_mistake_is_an_input_error_and_is_not_retried(
    store: FileStore, contract: Contract, status: int
) -> None:
    fid = await put(store, b"refused as malformed\n")
    contract.server.fail_next(1, status, **UPLOAD)
    with pytest.raises(InvalidInputError) as caught:
        await store.get_provider_file_id(fid, contract.provider)
    assert isinstance(caught.value, ProviderInputError)
    assert contract.provider in str(caught.value)
    # Bad input for every interface (HTTP 400, exit 2), not a failing upstream (502).
    assert (mapping_for(caught.value).http_status, mapping_for(caught.value).exit_code) == (400, 2)
    assert contract.failed_uploads() == [status]  # once: a retry cannot help
    assert contract.server.upload_count == 0
    assert await store.provider_copies(fid) == []


async def test_a_refused_key_is_an_auth_error_that_never_shows_the_key(
    home: Path, contract: Contract
) -> None:
    wrong = f"sk-wrong-{contract.provider}-9d8c7b6a5f"
    async with FileStore(contract.settings(home, **{f"{contract.provider}_api_key": wrong})) as s:
        fid = await put(s, b"whose key is this?\n")
        with pytest.raises(ProviderAuthError) as caught:
            await s.get_provider_file_id(fid, contract.provider)
    message = str(caught.value)
    assert contract.provider in message and f"{contract.provider.upper()}_API_KEY" in message
    assert wrong not in message and contract.server.api_key not in message
    assert contract.server.upload_count == 0
