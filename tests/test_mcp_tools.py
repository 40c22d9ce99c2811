"""The MCP tools and resource in depth, through the SDK's own client connected in-process.

Transports are covered by test_mcp_stdio.py and test_mcp_http.py; here the client talks to
``build_server(...)`` directly (the SDK's in-memory connection), so each case is fast and
can look at the store's files on disk before and after, as a user would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp.types import BlobResourceContents, TextResourceContents

from filetier import FileStore, Settings
from filetier.interfaces.mcp import build_server
from testbed.provider_server import ProviderServer
from tests.support.damage import flip_byte

KEY = "sk-kimi-mcp-test-3c9e1a7f5b"


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    path = tmp_path / "roots"
    path.mkdir()
    return path


def make_settings(home: Path, roots: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "fsync": False,
        "bookkeeping_flush_seconds": 0.05,
        "allowed_roots": str(roots),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(home: Path, roots: Path) -> Settings:
    return make_settings(home, roots)


@contextlib.asynccontextmanager
async def session(settings: Settings, store: FileStore | None = None) -> AsyncIterator[Client]:
    async with Client(build_server(settings, store=store)) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


def object_path(settings: Settings, sha256: str) -> Path:
    """Where the embedded primary keeps an object (its layout, seen from outside)."""
    return settings.objects_dir / "sha256" / sha256[:2] / sha256[2:4] / sha256


# -- lifecycle -----------------------------------------------------------------------------


async def test_a_shared_store_is_used_and_left_open(settings: Settings) -> None:
    async with FileStore(settings) as store:
        async with session(settings, store) as client:
            uploaded = await call(client, "upload_file", text="shared")
        # The session is over; the store it was given is still open and has the file.
        assert (await store.stat(uploaded["file_id"])).size == 6


async def test_an_own_store_is_opened_and_closed_with_the_server(settings: Settings) -> None:
    async with session(settings) as client:
        uploaded = await call(client, "upload_file", text="own")
        await call(client, "download_file", file_id=uploaded["file_id"], destination="own.txt")
    async with FileStore(settings) as store:  # the counters were flushed on close
        assert (await store.stat(uploaded["file_id"])).access_count == 1


# -- uploads -------------------------------------------------------------------------------


async def test_base64_round_trip_is_byte_exact_and_deduplicated(
    settings: Settings, roots: Path
) -> None:
    data = os.urandom(50_000)
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    async with session(settings) as client:
        first = await call(client, "upload_file", content_base64=encoded, filename="r.bin")
        again = await call(client, "upload_file", content_base64=wrapped, filename="r2.bin")
        assert first["sha256"] == hashlib.sha256(data).hexdigest() == again["sha256"]
        assert first["deduplicated"] is False and again["deduplicated"] is True
        assert again["bytes_written"] == 0 and first["file_id"] != again["file_id"]
        out = await call(client, "download_file", file_id=again["file_id"], destination="r.bin")
    assert Path(out["path"]).read_bytes() == data


async def test_inline_limit_is_enforced_before_decoding(home: Path, roots: Path) -> None:
    settings = make_settings(home, roots, inline_upload_max_bytes=1000)
    async with session(settings) as client:
        assert (
            await call(client, "upload_file", content_base64=base64.b64encode(b"x" * 1000).decode())
        )["size"] == 1000
        text = await error_text(
            client, "upload_file", content_base64=base64.b64encode(b"x" * 1001).decode()
        )
        assert "1,000 bytes" in text and "FILETIER_INLINE_UPLOAD_MAX_BYTES" in text
        # Multi-byte characters count as the bytes they encode to.
        text = await error_text(client, "upload_file", text="é" * 501)
        assert "inline limit" in text
        assert (await call(client, "list_files"))["total"] == 1


async def test_path_uploads_follow_links_only_inside_the_roots(
    settings: Settings, roots: Path, tmp_path: Path
) -> None:
    (roots / "data").mkdir()
    (roots / "data" / "real.txt").write_text("inside")
    (roots / "link.txt").symlink_to(roots / "data" / "real.txt")
    (tmp_path / "secret.txt").write_text("outside")
    (roots / "sneaky.txt").symlink_to(tmp_path / "secret.txt")
    async with session(settings) as client:
        uploaded = await call(client, "upload_file", path=str(roots / "link.txt"))
        assert uploaded["source_path"] == str((roots / "data" / "real.txt").resolve())
        assert uploaded["filename"] == "real.txt" and uploaded["size"] == 6

        text = await error_text(client, "upload_file", path="sneaky.txt")
        assert "outside the allowed roots" in text
        text = await error_text(client, "upload_file", path="data")
        assert "not a regular file" in text
        text = await error_text(client, "upload_file", path="missing.txt")
        assert "no such file" in text
        deep: dict[str, Any] = {}
        for _ in range(20):
            deep = {"level": deep}
        text = await error_text(client, "upload_file", text="x", metadata=deep)
        assert "metadata" in text
        assert (await call(client, "list_files"))["total"] == 1


# -- integrity -----------------------------------------------------------------------------


async def test_verify_finds_and_quarantines_a_corrupt_object(settings: Settings) -> None:
    data = os.urandom(40_000)
    async with session(settings) as client:
        good = await call(client, "upload_file", text="fine")
        uploaded = await call(
            client, "upload_file", content_base64=base64.b64encode(data).decode(), filename="d.bin"
        )
        checked = await call(client, "verify_file", file_id=uploaded["file_id"])
        assert checked["ok"] is True and checked["bytes_verified"] == len(data)

    flip_byte(object_path(settings, uploaded["sha256"]), 1234)

    async with session(settings) as client:  # a new process: nothing in memory
        store_report = await call(client, "verify_file")
        assert store_report["scope"] == "store" and store_report["ok"] is False
        assert [f["kind"] for f in store_report["findings"]] == ["corrupt_object"]

        checked = await call(client, "verify_file", file_id=uploaded["file_id"])
        assert checked["ok"] is False
        assert checked["findings"][0]["kind"] == "corrupt_object"
        assert "quarantined" in checked["findings"][0]["detail"]

        text = await error_text(
            client, "download_file", file_id=uploaded["file_id"], destination="d.bin"
        )
        assert uploaded["file_id"] in text
        assert (await call(client, "verify_file", file_id=good["file_id"]))["ok"] is True


async def test_verify_replaces_a_corrupt_cache_copy_from_the_primary(
    home: Path, roots: Path, tmp_path: Path
) -> None:
    settings = make_settings(home, roots, primary_url=f"file://{tmp_path / 'remote'}")
    data = os.urandom(300_000)
    async with session(settings) as client:
        uploaded = await call(
            client, "upload_file", content_base64=base64.b64encode(data).decode(), filename="c.bin"
        )
    async with FileStore(settings) as store:
        cache_copy = store.disk.path_for(uploaded["sha256"])
    flip_byte(cache_copy, 200_000)

    async with session(settings) as client:
        checked = await call(client, "verify_file", file_id=uploaded["file_id"])
        assert checked["ok"] is True and checked["tier"] == "primary"
        assert [(f["kind"], f["fixed"]) for f in checked["findings"]] == [("corrupt_cache", True)]
    assert cache_copy.read_bytes() == data


async def test_cleanup_plans_then_evicts_and_stats_show_it(
    home: Path, roots: Path, tmp_path: Path
) -> None:
    settings = make_settings(home, roots, primary_url=f"file://{tmp_path / 'remote'}")
    async with session(settings) as client:
        uploaded = await call(client, "upload_file", text="cached " * 1000)
        await call(client, "download_file", file_id=uploaded["file_id"], destination="a.txt")
        await call(client, "download_file", file_id=uploaded["file_id"], destination="b.txt")
        stats = await call(client, "cache_stats")
        assert stats["files"] == 1 and stats["downloads"] == 2
        assert stats["disk_cache_entries"] == 1
        assert stats["tier_hit_rates"]["memory"] == 1.0

        plan = await call(client, "cleanup_cache", dry_run=True, max_size_mb=0)
        assert plan["dry_run"] is True and plan["bytes_freed"] == 7000
        assert [a["kind"] for a in plan["actions"]] == ["evict_cache_size"]
        assert (await call(client, "cache_stats"))["disk_cache_entries"] == 1

        done = await call(client, "cleanup_cache", max_size_mb=0)
        assert done["dry_run"] is False and done["bytes_freed"] == 7000
        assert (await call(client, "cache_stats"))["disk_cache_entries"] == 0
        # The file itself is still there, served from the primary.
        again = await call(
            client, "download_file", file_id=uploaded["file_id"], destination="c.txt"
        )
        assert again["sha256"] == uploaded["sha256"]


# -- the resource template -----------------------------------------------------------------


async def test_resource_template_inlines_only_small_utf8_text(settings: Settings) -> None:
    async with session(settings) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["filetier://files/{file_id}"]

        as_json = await call(
            client, "upload_file", text='{"a": 1}', filename="a.json", mime_type="application/json"
        )
        big_text = await call(client, "upload_file", text="y" * (64 * 1024 + 1))
        latin1 = await call(
            client,
            "upload_file",
            content_base64=base64.b64encode("caf\xe9".encode("latin-1")).decode(),
            mime_type="text/plain",
        )
        binary = await call(
            client, "upload_file", content_base64=base64.b64encode(os.urandom(2000)).decode()
        )

        content = (await client.read_resource(as_json["resource_uri"])).contents[0]
        assert isinstance(content, TextResourceContents)
        assert (content.text, content.mime_type) == ('{"a": 1}', "application/json")

        # Small files that are not UTF-8 text are embedded as their bytes.
        for small in (latin1, binary):
            content = (await client.read_resource(small["resource_uri"])).contents[0]
            assert isinstance(content, BlobResourceContents), small
            assert hashlib.sha256(base64.b64decode(content.blob)).hexdigest() == small["sha256"]
        # A large one is described; in-process (like stdio) there is no HTTP path to name.
        content = (await client.read_resource(big_text["resource_uri"])).contents[0]
        assert isinstance(content, TextResourceContents)
        assert content.mime_type == "application/json"
        assert f'"sha256": "{big_text["sha256"]}"' in content.text
        assert "/v1/files" not in content.text and "download_file" in content.text
        assert len(content.text) < 2000

        with pytest.raises(MCPError, match="no file with id"):
            await client.read_resource("filetier://files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f")
        with pytest.raises(MCPError, match="is not a file id"):
            await client.read_resource("filetier://files/nope")


# -- providers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as running:
        yield running


@pytest.fixture
def provider_settings(
    home: Path, roots: Path, provider: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    provider.reset()
    for name in ("KIMI", "GLM", "OPENAI"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
    return make_settings(
        home,
        roots,
        kimi_api_key=KEY,
        kimi_base_url=provider.base_url,
        provider_retry_attempts=2,
        provider_timeout_seconds=5,
    )


async def test_provider_tools(provider_settings: Settings, roots: Path) -> None:
    notes = "line one\nline two\n" * 100
    async with session(provider_settings) as client:
        uploaded = await call(client, "upload_file", text=notes, filename="notes.txt")
        fid = uploaded["file_id"]

        first = await call(client, "get_provider_file_id", file_id=fid, provider="kimi")
        again = await call(client, "get_provider_file_id", file_id=fid, provider="kimi")
        assert first["uploaded"] is True and again["uploaded"] is False
        assert first["provider_file_id"] == again["provider_file_id"]
        assert (await call(client, "file_info", file_id=fid))["provider_file_ids"] == {
            "kimi": first["provider_file_id"]
        }

        page = await call(client, "get_file_text", file_id=fid, provider="kimi", max_chars=1000)
        assert page["text"] == notes[:1000] and page["total_chars"] == len(notes)
        assert page["next_offset"] == 1000
        last = await call(
            client, "get_file_text", file_id=fid, provider="kimi", offset=1000, max_chars=5000
        )
        assert last["text"] == notes[1000:] and last["next_offset"] is None
        assert last["cached"] is True

        answer = await call(
            client, "ask_file", file_ids=[fid], question="what is on line two?", provider="kimi"
        )
        assert answer["answer"] == "answer to what is on line two? using 1 system messages"
        assert answer["provider_file_ids"] == [first["provider_file_id"]]

        # A provider's file id works as a download address too.
        out = await call(
            client, "download_file", file_id=first["provider_file_id"], destination="via-kimi.txt"
        )
        assert Path(out["path"]).read_text() == notes

        text = await error_text(client, "get_provider_file_id", file_id=fid, provider="nosuch")
        assert "nosuch" in text
        text = await error_text(client, "get_file_text", file_id=fid, provider="glm")
        assert "GLM_API_KEY" in text
        assert KEY not in text
