"""GLM's current purposes next to its legacy ``file-extract``, and per-purpose file counts.

Zhipu's docs now list ``batch``, ``code-interpreter``, ``agent`` and
``voice-clone-input`` and mark ``file-extract`` legacy. Driven through the real ``openai``
SDK against the loopback provider, configured to accept what GLM accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filetier import FileStore, Settings
from filetier.errors import ProviderLimitError, UnsupportedPurposeError
from testbed.provider_server import ProviderServer

KEY = "sk-glm-test-secret-3a7c"
GLM_PURPOSES = {"batch", "code-interpreter", "agent", "voice-clone-input", "file-extract"}


@pytest.fixture(scope="module")
def running() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY, allowed_purposes=GLM_PURPOSES) as provider:
        yield provider


@pytest.fixture
def server(running: ProviderServer) -> Iterator[ProviderServer]:
    running.reset()
    yield running
    running.reset()


def glm_settings(home: Path, server: ProviderServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "glm_api_key": server.api_key,
        "glm_base_url": server.base_url,
        "provider_retry_attempts": 2,
        "provider_timeout_seconds": 2,
    }
    values.update(overrides)
    return Settings(**values)


async def test_current_purposes_and_legacy_file_extract_each_get_a_copy(
    home: Path, server: ProviderServer
) -> None:
    async with FileStore(glm_settings(home, server)) as store:
        fid = str((await store.upload_file(b"report body\n", filename="r.txt")).file_id)
        ids = {
            purpose: (await store.get_provider_file_id(fid, "glm", purpose)).provider_file_id
            for purpose in ("agent", "code-interpreter", "batch", "file-extract")
        }
        text = await store.get_file_text(fid, "glm")  # the legacy path still answers
        record = await store.stat(fid)
    assert server.upload_count == 4
    assert {server.files[i]["purpose"] for i in ids.values()} == {
        "agent",
        "code-interpreter",
        "batch",
        "file-extract",
    }
    assert text.text == "report body\n" and text.provider_file_id == ids["file-extract"]
    assert record.provider_file_ids["glm"] == ids["file-extract"]
    assert record.provider_file_ids["glm:agent"] == ids["agent"]


async def test_agent_files_over_20_mb_are_refused_before_sending(
    home: Path, server: ProviderServer
) -> None:
    async with FileStore(glm_settings(home, server)) as store:
        fid = str((await store.upload_file(b"x" * (20 * 1024 * 1024 + 1), filename="big")).file_id)
        with pytest.raises(ProviderLimitError) as caught:
            await store.get_provider_file_id(fid, "glm", "agent")
        with pytest.raises(UnsupportedPurposeError):
            await store.get_provider_file_id(fid, "glm", "vision")
    assert "agent" in str(caught.value)
    assert server.requests == []


async def test_a_purpose_with_its_own_file_count_evicts_only_its_own_copies(
    home: Path, server: ProviderServer
) -> None:
    settings = glm_settings(home, server, provider_limits="glm.code-interpreter.max_files=2")
    async with FileStore(settings) as store:
        fids = [
            str((await store.upload_file(f"sheet {i}\n".encode(), filename=f"{i}.csv")).file_id)
            for i in range(4)
        ]
        agent = await store.get_provider_file_id(fids[0], "glm", "agent")  # the oldest copy
        ci = [
            (await store.get_provider_file_id(f, "glm", "code-interpreter")).provider_file_id
            for f in fids[1:]
        ]
    remaining = set(server.files)
    assert ci[0] not in remaining  # the least recently used code-interpreter copy went
    assert {ci[1], ci[2], agent.provider_file_id} <= remaining
    assert len(remaining) == 3
