"""The MCP server over stdio: a real subprocess, driven by the SDK's own stdio client.

The server is started the way ``filetier mcp`` starts it (``run_stdio(Settings())`` and then
``os._exit``), configured only through its environment, in an empty working directory.
Its stderr is kept in a file so the tests can check that it exited cleanly and that no
traceback ever reached the client.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextResourceContents

from filetier import FileStore, Settings

STOPPED = "filetier-mcp-test: run_stdio returned"
LAUNCH = (
    "import os, sys\n"
    "from filetier.config import Settings\n"
    "from filetier.interfaces.mcp.server import run_stdio\n"
    "run_stdio(Settings())\n"
    f"print({STOPPED!r}, file=sys.stderr, flush=True)\n"
    "os._exit(0)\n"
)
INLINE_LIMIT = 64 * 1024
# No provider is configured here, so the provider tools are not listed.
EXPECTED_TOOLS = {
    "upload_file",
    "download_file",
    "file_info",
    "list_files",
    "delete_file",
    "verify_file",
    "cleanup_cache",
    "cache_stats",
    "create_link",
    "revoke_links",
}


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    path = tmp_path / "roots"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path, roots: Path) -> dict[str, str]:
    return {
        "FILETIER_HOME": str(home),
        "FILETIER_ALLOWED_ROOTS": str(roots),
        "FILETIER_FSYNC": "false",
        "FILETIER_INLINE_UPLOAD_MAX_BYTES": str(INLINE_LIMIT),
    }


@contextlib.asynccontextmanager
async def stdio_session(
    env: dict[str, str], cwd: Path, log: TextIO, mode: str = "auto", message_handler: Any = None
) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-c", LAUNCH], env=env, cwd=cwd)
    transport = stdio_client(params, errlog=log)
    async with Client(transport, mode=mode, message_handler=message_handler) as client:
        yield client


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "server-stderr.log").open("w+") as handle:
        yield handle


def server_log(log: TextIO) -> str:
    log.flush()
    log.seek(0)
    return log.read()


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text and 'File "' not in text, text
    return text


async def test_tools_round_trip_and_clean_exit(
    env: dict[str, str], tmp_path: Path, roots: Path, home: Path, log: TextIO
) -> None:
    (roots / "in").mkdir()
    (roots / "in" / "report.csv").write_text("a,b\n1,2\n")
    async with stdio_session(env, tmp_path, log) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool.name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            assert tool.annotations is not None
        assert tools["file_info"].annotations.read_only_hint is True
        assert tools["list_files"].annotations.read_only_hint is True
        assert tools["delete_file"].annotations.destructive_hint is True
        assert tools["delete_file"].annotations.read_only_hint is False
        assert tools["upload_file"].annotations.idempotent_hint is False
        assert tools["delete_file"].annotations.idempotent_hint is False
        # verify_file drops a corrupt cache copy and sets a corrupt stored one aside.
        assert tools["verify_file"].annotations.read_only_hint is False
        # The whole listing stays small: every byte of it is in the model's context.
        listing = json.dumps(
            [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.values()]
        )
        assert len(listing.encode()) < 8 * 1024, len(listing)
        assert '"title"' not in json.dumps(tools["upload_file"].input_schema)

        inline = await call(client, "upload_file", text="hello, stdio\n", filename="hello.txt")
        assert inline["source"] == "text" and inline["size"] == 13
        assert inline["resource_uri"] == f"filetier://files/{inline['file_id']}"

        by_path = await call(client, "upload_file", path="in/report.csv", metadata={"project": "x"})
        assert by_path["source_path"] == str((roots / "in" / "report.csv").resolve())
        assert by_path["filename"] == "report.csv" and by_path["size"] == 8

        downloaded = await call(
            client, "download_file", file_id=by_path["file_id"], destination="out/"
        )
        assert downloaded["path"] == str(roots.resolve() / "out" / "report.csv")
        assert downloaded["sha256"] == by_path["sha256"] and downloaded["verified"] is True
        assert downloaded["tier"] in {"memory", "disk", "primary"}
        assert (roots / "out" / "report.csv").read_text() == "a,b\n1,2\n"

        info = await call(client, "file_info", file_id=by_path["file_id"])
        assert info["metadata"] == {"project": "x"} and info["mime_type"].startswith("text/")
        # Over stdio there is no HTTP server to name: results point at local paths only.
        assert info["content_path"] is None

        listed = await call(client, "list_files", limit=1)
        assert listed["total"] == 2 and len(listed["items"]) == 1 and listed["next_offset"] == 1

        # Text is one line for a person; the data comes once (structured), with a
        # resource_link per file.
        result = await client.call_tool("list_files", {})
        texts = [b for b in result.content if b.type == "text"]
        links = [b for b in result.content if b.type == "resource_link"]
        assert len(texts) == 1 and "\n" not in texts[0].text and "2 file(s)" in texts[0].text
        assert {str(link.uri) for link in links} == {
            f"filetier://files/{inline['file_id']}",
            f"filetier://files/{by_path['file_id']}",
        }
        named = {link.name: link for link in links}
        assert named["report.csv"].size == 8 and named["report.csv"].mime_type.startswith("text/")
        for tool, arguments in (
            ("file_info", {"file_id": by_path["file_id"]}),
            ("download_file", {"file_id": by_path["file_id"], "destination": "again/"}),
        ):
            result = await client.call_tool(tool, arguments)
            kinds = [b.type for b in result.content]
            assert kinds == ["text", "resource_link"], (tool, kinds)
            assert "{" not in result.content[0].text  # a summary, not the JSON again

        text = await client.read_resource(inline["resource_uri"])
        content = text.contents[0]
        assert isinstance(content, TextResourceContents)
        assert content.text == "hello, stdio\n" and content.mime_type == "text/plain"

        # A link over stdio names the address `filetier serve` would answer at, and says so.
        result = await client.call_tool("create_link", {"file_id": inline["file_id"]})
        assert not result.is_error, result.content
        assert result.structured_content is not None
        assert result.structured_content["url"].startswith("http://127.0.0.1:8787/links/")
        assert "filetier serve" in result.content[0].text

        deleted = await call(client, "delete_file", file_id=inline["file_id"])
        assert deleted["file_id"] == inline["file_id"]
        gone = await error_text(client, "file_info", file_id=inline["file_id"])
        assert f"no file with id {inline['file_id']}" in gone

    output = server_log(log)
    assert STOPPED in output
    assert "Traceback" not in output
    # Exited through the lifespan: the download bookkeeping was flushed before it closed.
    async with FileStore(Settings(home=home, fsync=False)) as store:
        assert (await store.stats()).downloads >= 1
        assert (await store.stat(by_path["file_id"])).access_count >= 1


async def test_errors_are_tool_errors_with_actionable_text(
    env: dict[str, str], tmp_path: Path, roots: Path, log: TextIO
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not for upload")
    (roots / "escape").symlink_to(tmp_path)
    async with stdio_session(env, tmp_path, log) as client:
        text = await error_text(client, "upload_file", path=str(outside))
        assert "outside the allowed roots" in text and str(roots) in text
        text = await error_text(client, "upload_file", path="escape/outside.txt")
        assert "outside the allowed roots" in text
        text = await error_text(client, "upload_file", path="../outside.txt")
        assert "outside the allowed roots" in text

        text = await error_text(client, "file_info", file_id="not-a-uuid")
        assert "is not a file id" in text
        text = await error_text(
            client, "download_file", file_id="0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f"
        )
        assert "no file with id" in text

        text = await error_text(client, "upload_file", text="x" * (INLINE_LIMIT + 1))
        assert "inline" in text and "path" in text
        text = await error_text(client, "upload_file", content_base64="@@not base64@@")
        assert "not valid base64" in text
        text = await error_text(client, "upload_file")
        assert "exactly one of path, text or content_base64" in text
        text = await error_text(client, "upload_file", text="a", path="a.txt")
        assert "(got path, text)" in text

        uploaded = await call(client, "upload_file", text="x")
        text = await error_text(
            client, "download_file", file_id=uploaded["file_id"], destination="/etc/passwd"
        )
        assert "outside every allowed root" in text
        text = await error_text(client, "list_files", limit=0)
        assert "limit" in text
        text = await error_text(
            client, "get_provider_file_id", file_id=uploaded["file_id"], provider="kimi"
        )
        assert "KIMI_API_KEY" in text
        # An argument the tool does not take is refused, naming the ones it does.
        text = await error_text(client, "download_file", file_id=uploaded["file_id"], dest="x/")
        assert "'dest'" in text and "destination" in text and "overwrite" in text
        assert not (roots / "x").exists()

    assert "Traceback" not in server_log(log)


async def test_progress_notifications_for_large_transfers(
    env: dict[str, str], tmp_path: Path, roots: Path, log: TextIO
) -> None:
    size = 6 * 1024 * 1024  # over the 4 MiB memory-item limit: streamed in chunks
    (roots / "big.bin").write_bytes(os.urandom(size))
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async with stdio_session(env, tmp_path, log) as client:
        result = await client.call_tool(
            "upload_file", {"path": "big.bin"}, progress_callback=on_progress
        )
        assert not result.is_error, result.content
        uploaded = result.structured_content
        assert uploaded is not None and uploaded["size"] == size
        assert len(events) >= 2
        assert events[0][0] == 0 and events[-1][:2] == (size, size)
        assert all(later[0] >= earlier[0] for earlier, later in itertools.pairwise(events))
        assert "big.bin" in (events[-1][2] or "")

        events.clear()
        result = await client.call_tool(
            "download_file",
            {"file_id": uploaded["file_id"], "destination": "copy.bin"},
            progress_callback=on_progress,
        )
        assert not result.is_error, result.content
        assert len(events) >= 2 and events[-1][:2] == (size, size)
        assert (roots / "copy.bin").read_bytes() == (roots / "big.bin").read_bytes()

        # A large file read as a resource is described, never sent as base64.
        described = await client.read_resource(uploaded["resource_uri"])
        content = described.contents[0]
        assert isinstance(content, TextResourceContents)
        assert content.mime_type == "application/json" and len(content.text) < 2000
        description = json.loads(content.text)
        assert description["size"] == size
        assert "content_path" not in description and "url" not in description


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_changed_over_stdio(
    env: dict[str, str], tmp_path: Path, log: TextIO, mode: str
) -> None:
    """An upload and a delete each notify the client that the resource list changed."""
    from tests.support.mcp import ListChanges

    changes = ListChanges()
    legacy = mode == "legacy"
    handler = changes.on_message if legacy else None
    async with (
        stdio_session(env, tmp_path, log, mode, handler) as client,
        anyio.create_task_group() as listening,
    ):
        if not legacy:
            await listening.start(changes.listen, client)
        uploaded = await call(client, "upload_file", text="notify me", filename="n.txt")
        seen = await changes.more_than(0)
        await call(client, "delete_file", file_id=uploaded["file_id"])
        await changes.more_than(seen)
        listening.cancel_scope.cancel()
    assert "Traceback" not in server_log(log)


async def test_a_cancelled_upload_leaves_nothing_behind(
    env: dict[str, str], tmp_path: Path, roots: Path, home: Path, log: TextIO
) -> None:
    """The client cancels a large path upload once it is under way (the SDK sends
    notifications/cancelled): no staged file, no row, no object remains, and the session
    goes on serving."""
    size = 256 * 1024 * 1024
    with (roots / "large.bin").open("wb") as handle:
        block = os.urandom(1024 * 1024)
        for _ in range(size // len(block)):
            handle.write(block)
    progressed: list[float] = []
    async with stdio_session(env, tmp_path, log, "legacy") as client:
        with anyio.CancelScope() as scope:

            async def on_progress(
                progress: float, total: float | None, message: str | None
            ) -> None:
                progressed.append(progress)
                if progress > 0:
                    scope.cancel()

            await client.call_tool(
                "upload_file", {"path": "large.bin"}, progress_callback=on_progress
            )
        assert scope.cancelled_caught, "the upload finished before it could be cancelled"
        assert 0 < max(progressed) < size

        objects = home / "objects"
        with anyio.fail_after(20):  # the server stops the copy, then removes its temp file
            while [p for p in home.rglob("*.tmp") if p.is_file()]:
                await anyio.sleep(0.05)
        assert (await call(client, "list_files"))["total"] == 0
        assert [p for p in objects.rglob("*") if p.is_file()] == []
        again = await call(client, "upload_file", text="still serving", filename="s.txt")
        assert again["size"] == 13
    assert "Traceback" not in server_log(log)


async def test_every_tool_listed_still_fits_in_8_kib(
    env: dict[str, str], tmp_path: Path, log: TextIO
) -> None:
    """With every provider configured, and as the operator (stdio), all 13 tools are
    listed and the listing (the result's tools as compact JSON) stays under 8 KiB; the
    provider argument names only providers this server has keys for."""
    keys = ("KIMI", "GLM", "OPENAI", "GEMINI", "ANTHROPIC", "MISTRAL")
    with_keys = {
        **env,
        **{f"{name}_API_KEY": f"sk-{name.lower()}-test-1234567890" for name in keys},
    }
    async with stdio_session(with_keys, tmp_path, log) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == EXPECTED_TOOLS | {
            "get_provider_file_id",
            "get_file_text",
            "ask_file",
        }
        listing = json.dumps(
            [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert len(listing.encode()) < 8 * 1024, len(listing.encode())
        ask = next(t for t in tools if t.name == "ask_file")
        assert ask.input_schema["properties"]["provider"]["enum"] == [k.lower() for k in keys]
    async with stdio_session(
        {**env, "KIMI_API_KEY": "sk-kimi-test-1234567890"}, tmp_path, log
    ) as client:
        ask = next(t for t in (await client.list_tools()).tools if t.name == "ask_file")
        assert ask.input_schema["properties"]["provider"]["enum"] == ["kimi"]
