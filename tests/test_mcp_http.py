"""The MCP server over streamable HTTP, through the SDK's own client, against a real server.

uvicorn serves, on loopback and in a thread, a small Starlette app shaped like filetier's
HTTP process: the MCP app routed at ``/mcp`` and, in front of it, a stand-in for the
authentication layer that puts the caller's owner in ``scope["state"]["filetier_owner"]``
(here taken from a test header). Owner separation is checked through that real path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from filetier import FileStore, Settings
from filetier.interfaces.mcp import mcp_http_app
from tests.support.mcp import (
    ListChanges,
    OwnerFromHeader,
    ServerThread,
    call,
    connect,
    error_text,
)


def build_app(settings: Settings) -> Starlette:
    store = FileStore(settings)  # opened by the lifespan, shared with the MCP app
    mcp = mcp_http_app(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with store, mcp.lifespan():
            yield

    app = Starlette(routes=[Route("/mcp", endpoint=mcp)], lifespan=lifespan)
    app.add_middleware(OwnerFromHeader)
    return app


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    path = tmp_path / "roots"
    path.mkdir()
    return path


@pytest.fixture
def server(home: Path, roots: Path) -> Iterator[ServerThread]:
    settings = Settings(
        home=home, fsync=False, bookkeeping_flush_seconds=0.05, allowed_roots=str(roots)
    )
    with ServerThread(build_app(settings)) as running:
        yield running


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_upload_and_download_over_http(
    server: ServerThread, roots: Path, mode: str
) -> None:
    async with connect(server, "alice", mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"upload_file", "download_file", "file_info", "list_files", "delete_file"} <= names

        uploaded = await call(client, "upload_file", text="over http\n", filename="h.txt")
        assert uploaded["size"] == 10 and uploaded["source"] == "text"

        events: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            events.append((progress, total))

        result = await client.call_tool(
            "download_file",
            {"file_id": uploaded["file_id"], "destination": "out/h.txt"},
            progress_callback=on_progress,
        )
        assert not result.is_error, result.content
        downloaded = result.structured_content
        assert downloaded is not None
        # Over HTTP a caller's paths are inside its own folder of the root.
        assert downloaded["path"] == str(roots.resolve() / "alice" / "out" / "h.txt")
        assert downloaded["sha256"] == uploaded["sha256"]
        assert downloaded["tier"] in {"memory", "disk", "primary"}
        assert (roots / "alice" / "out" / "h.txt").read_text() == "over http\n"
        assert events and events[-1] == (10, 10)


async def test_owners_cannot_reach_each_others_files(server: ServerThread, roots: Path) -> None:
    async with connect(server, "alice") as alice, connect(server, "bob") as bob:
        secret = await call(alice, "upload_file", text="alice's notes", filename="a.txt")
        fid = secret["file_id"]
        await call(bob, "upload_file", text="bob's notes", filename="b.txt")

        for tool, extra in (
            ("file_info", {}),
            ("download_file", {"destination": "stolen.txt"}),
            ("delete_file", {}),
            ("verify_file", {}),
        ):
            text = await error_text(bob, tool, file_id=fid, **extra)
            assert f"no file with id {fid}" in text, (tool, text)
        assert not (roots / "stolen.txt").exists()

        bobs = await call(bob, "list_files")
        assert [item["filename"] for item in bobs["items"]] == ["b.txt"]
        assert bobs["total"] == 1
        # Same content, different owner: a search by hash does not reveal alice's file.
        by_hash = await call(bob, "list_files", sha256=secret["sha256"])
        assert by_hash["total"] == 0

        # Resources are owner-scoped too.
        assert (await alice.read_resource(f"filetier://files/{fid}")).contents
        with pytest.raises(MCPError, match="no file with id"):
            await bob.read_resource(f"filetier://files/{fid}")

        # Alice still has her file, untouched by bob's attempts.
        info = await call(alice, "file_info", file_id=fid)
        assert info["filename"] == "a.txt"

        # Whole-store maintenance is the operator's (settings.owner), not a tenant's.
        text = await error_text(bob, "verify_file")
        assert "operator" in text
        text = await error_text(bob, "cleanup_cache", dry_run=True)
        assert "operator" in text
        # ... and it is not even listed for him, only for the operator.
        assert "cleanup_cache" not in {t.name for t in (await bob.list_tools()).tools}
    async with connect(server, "default") as operator:
        assert "cleanup_cache" in {t.name for t in (await operator.list_tools()).tools}


async def test_served_alone_it_runs_its_lifespan_and_refuses_ownerless_calls(
    home: Path, roots: Path
) -> None:
    settings = Settings(home=home, fsync=False, allowed_roots=str(roots))
    with ServerThread(mcp_http_app(settings)) as alone:  # its own store, its own lifespan
        async with connect(alone, None) as anonymous:
            # No provider tools (none configured), no operator tools (not the operator).
            assert len((await anonymous.list_tools()).tools) == 9
            text = await error_text(anonymous, "list_files")
            assert "no authenticated owner" in text


async def test_behind_filetiers_http_api_each_token_is_its_own_owner(
    home: Path, roots: Path
) -> None:
    from filetier.interfaces.app import build_app as build_http_api

    alice, bob = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
    settings = Settings(
        home=home, fsync=False, allowed_roots=str(roots), api_tokens=f"alice:{alice},bob:{bob}"
    )
    with ServerThread(build_http_api(settings)) as api:
        async with (
            connect(api, None, token=alice) as as_alice,
            connect(api, None, token=bob) as as_bob,
        ):
            uploaded = await call(as_alice, "upload_file", text="alice only")
            assert (await call(as_alice, "list_files"))["total"] == 1
            assert (await call(as_bob, "list_files"))["total"] == 0
            text = await error_text(as_bob, "file_info", file_id=uploaded["file_id"])
            assert "no file with id" in text
        async with httpx2.AsyncClient(timeout=30) as http:
            assert (await http.post(api.url, json={})).status_code == 401


async def test_the_process_owner_may_run_store_wide_maintenance(server: ServerThread) -> None:
    async with connect(server, "default") as operator:
        await call(operator, "upload_file", text="x" * 100)
        report = await call(operator, "verify_file")
        assert report["scope"] == "store" and report["ok"] is True
        plan = await call(operator, "cleanup_cache", dry_run=True)
        assert plan["dry_run"] is True


def test_inline_upload_limit_fits_in_a_request_body(home: Path, roots: Path) -> None:
    """Base64 of an upload at the inline limit must not be cut by the body-size guard."""
    settings = Settings(
        home=home, inline_upload_max_bytes=8 * 1024 * 1024, allowed_roots=str(roots)
    )
    app = mcp_http_app(settings, FileStore(settings))
    assert app.session_manager.max_request_body_size > 8 * 1024 * 1024 * 4 // 3


async def test_large_base64_upload_over_http(server: ServerThread) -> None:
    data = os.urandom(1024 * 1024)  # the default inline limit, 1.33 MiB as base64
    async with connect(server, "alice") as client:
        uploaded = await call(
            client, "upload_file", content_base64=base64.b64encode(data).decode(), filename="r.bin"
        )
        assert uploaded["size"] == len(data) and uploaded["source"] == "base64"


async def test_an_agent_mints_a_link_hands_it_on_and_revokes_it(home: Path, roots: Path) -> None:
    """The round trip of a remote agent: upload, get a link, a token-less client fetches
    it, the agent revokes it; another owner can neither link nor revoke alice's file."""
    from filetier.interfaces.app import build_app as build_http_api

    alice, bob = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
    settings = Settings(
        home=home, fsync=False, allowed_roots=str(roots), api_tokens=f"alice:{alice},bob:{bob}"
    )
    with ServerThread(build_http_api(settings)) as api:
        async with (
            connect(api, None, token=alice) as as_alice,
            connect(api, None, token=bob) as as_bob,
        ):
            uploaded = await call(as_alice, "upload_file", text="hand me on\n", filename="h.txt")
            link = await call(as_alice, "create_link", file_id=uploaded["file_id"], expires_in=60)
            # The URL names the address the agent reached the server at.
            assert link["url"].startswith(f"http://127.0.0.1:{api.port}/links/")
            assert link["direct"] is False and link["link_id"]
            async with httpx2.AsyncClient(timeout=30) as anyone:
                fetched = await anyone.get(link["url"])
                assert fetched.status_code == 200 and fetched.content == b"hand me on\n"
                assert 'filename="h.txt"' in fetched.headers["content-disposition"]

                text = await error_text(as_bob, "create_link", file_id=uploaded["file_id"])
                assert "no file with id" in text
                text = await error_text(as_bob, "revoke_links", link_id=link["link_id"])
                assert "no live link" in text
                assert (await anyone.get(link["url"])).status_code == 200

                revoked = await call(as_alice, "revoke_links", link_id=link["link_id"])
                assert revoked == {"revoked": 1}
                assert (await anyone.get(link["url"])).status_code == 404

            text = await error_text(
                as_alice, "create_link", file_id=uploaded["file_id"], direct=True
            )
            assert "S3-compatible" in text
            text = await error_text(as_alice, "revoke_links")
            assert "exactly one of" in text


async def test_download_without_a_destination_over_http_returns_a_link(
    home: Path, roots: Path
) -> None:
    """A remote agent gets a URL it can fetch where it runs; nothing lands on the server."""
    from filetier.interfaces.app import build_app as build_http_api

    alice = "alice-token-0123456789abcdef"
    settings = Settings(
        home=home, fsync=False, allowed_roots=str(roots), api_tokens=f"alice:{alice}"
    )
    with ServerThread(build_http_api(settings)) as api:
        async with connect(api, None, token=alice) as client:
            uploaded = await call(client, "upload_file", text="fetch me remotely", filename="r.txt")
            result = await client.call_tool("download_file", {"file_id": uploaded["file_id"]})
            assert not result.is_error, result.content
            got = result.structured_content
            assert got is not None and got["path"] is None and got["url"]
            assert [b.type for b in result.content] == ["text", "resource_link"]
            assert str(result.content[1].uri) == f"filetier://files/{uploaded['file_id']}"
            assert got["url"] in result.content[0].text
            # Nothing was written on the server, in any root or the downloads folder.
            assert not any(p.is_file() for p in roots.rglob("*"))
            assert not (home / "downloads").exists() or not any(
                p.is_file() for p in (home / "downloads").rglob("*")
            )
            async with httpx2.AsyncClient(timeout=30) as anyone:
                fetched = await anyone.get(got["url"])
            assert fetched.status_code == 200 and fetched.content == b"fetch me remotely"
            # Over HTTP, results name the HTTP content path too.
            info = await call(client, "file_info", file_id=uploaded["file_id"])
            assert info["content_path"] == f"/v1/files/{uploaded['file_id']}/content"


async def test_resources_list_the_callers_files_and_large_reads_are_links(
    home: Path, roots: Path
) -> None:
    from filetier.interfaces.app import build_app as build_http_api

    alice, bob = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
    settings = Settings(
        home=home, fsync=False, allowed_roots=str(roots), api_tokens=f"alice:{alice},bob:{bob}"
    )
    with ServerThread(build_http_api(settings)) as api:
        async with (
            connect(api, None, token=alice) as as_alice,
            connect(api, None, token=bob) as as_bob,
        ):
            big = os.urandom(200_000)
            large = await call(
                as_alice,
                "upload_file",
                content_base64=base64.b64encode(big).decode(),
                filename="big.bin",
            )
            for n in range(104):
                await call(as_alice, "upload_file", text=f"note {n}", filename=f"n{n}.txt")
            await call(as_bob, "upload_file", text="bob's", filename="bob.txt")

            first = await as_alice.list_resources()
            assert len(first.resources) == 100 and first.next_cursor
            rest = await as_alice.list_resources(cursor=first.next_cursor)
            assert len(rest.resources) == 5 and rest.next_cursor is None
            names = {r.name for r in [*first.resources, *rest.resources]}
            assert "big.bin" in names and "bob.txt" not in names and len(names) == 105
            listed_big = next(r for r in rest.resources if r.name == "big.bin")
            assert listed_big.size == 200_000
            assert [r.name for r in (await as_bob.list_resources()).resources] == ["bob.txt"]

            content = (await as_alice.read_resource(large["resource_uri"])).contents[0]
            description = json.loads(content.text)
            async with httpx2.AsyncClient(timeout=30) as anyone:
                fetched = await anyone.get(description["url"])
            assert fetched.status_code == 200 and fetched.content == big
            with pytest.raises(MCPError, match="no file with id"):
                await as_bob.read_resource(large["resource_uri"])


class LoopOf:
    """An ASGI wrapper that keeps the server's event loop, so the test can call the
    library on the store the server runs (as code in the server process would)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def run(self, work: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_changed_reaches_the_owners_own_sessions_only(
    home: Path, roots: Path, mode: str
) -> None:
    """A file added or deleted by alice, through MCP, the HTTP API or the library in the
    server's process, notifies alice's sessions; bob's receive nothing until he himself
    changes a file (then alice's receive nothing)."""
    from filetier.interfaces.app import build_app as build_http_api

    alice, bob = "alice-token-0123456789abcdef", "bob-token-0123456789abcdefgh"
    settings = Settings(
        home=home, fsync=False, allowed_roots=str(roots), api_tokens=f"alice:{alice},bob:{bob}"
    )
    api_app = build_http_api(settings)
    app = LoopOf(api_app)
    alices, bobs = ListChanges(), ListChanges()
    legacy = mode == "legacy"
    with ServerThread(app) as api:
        async with (
            connect(
                api, None, mode, token=alice, message_handler=alices.on_message if legacy else None
            ) as as_alice,
            connect(
                api, None, mode, token=bob, message_handler=bobs.on_message if legacy else None
            ) as as_bob,
            anyio.create_task_group() as listening,
        ):
            if legacy:
                caps = as_alice.server_capabilities.resources
                assert caps is not None and caps.list_changed is True
                await as_bob.list_tools()  # bob's session is known before alice acts
            else:
                await listening.start(alices.listen, as_alice)
                await listening.start(bobs.listen, as_bob)

            uploaded = await call(as_alice, "upload_file", text="by mcp", filename="m.txt")
            seen = await alices.more_than(0)

            async with httpx2.AsyncClient(timeout=30) as http:
                response = await http.post(
                    api.url.replace("/mcp", "/v1/files?filename=h.txt"),
                    content=b"by http",
                    headers={"Authorization": f"Bearer {alice}"},
                )
                assert response.status_code == 201, response.text
                seen = await alices.more_than(seen)
                # A new record for content she has: by hash, no bytes sent.
                response = await http.post(
                    api.url.replace("/mcp", "/v1/files/by-hash"),
                    json={
                        "sha256": hashlib.sha256(b"by http").hexdigest(),
                        "size": 7,
                        "filename": "again.txt",
                    },
                    headers={"Authorization": f"Bearer {alice}"},
                )
                assert response.status_code == 201, response.text
            seen = await alices.more_than(seen)

            store = api_app.state.runtime.store
            app.run(store.as_owner("alice").upload_file(b"by the library", filename="l.txt"))
            seen = await alices.more_than(seen)

            await call(as_alice, "delete_file", file_id=uploaded["file_id"])
            seen = await alices.more_than(seen)

            await anyio.sleep(0.5)  # what bob would have had by now, had it leaked
            assert bobs.count == 0
            await call(as_bob, "upload_file", text="bob's", filename="b.txt")
            await bobs.more_than(0)
            await anyio.sleep(0.3)
            assert alices.count == seen
            listening.cancel_scope.cancel()
