"""An MCP client over streamable HTTP against an app served from this process.

:class:`ServerThread` serves an ASGI app (the bare MCP app, or filetier's whole HTTP API)
with uvicorn on a free loopback port; :func:`connect` opens an MCP client session on its
``/mcp`` endpoint, as an owner (through :class:`OwnerFromHeader`, which stands in for the
bearer-token layer) or with a real token.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.http import ThreadServer

OWNER_HEADER = "x-test-owner"


class OwnerFromHeader:
    """Stands in for filetier's bearer-token authentication: header -> scope state."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            owner = Headers(scope=scope).get(OWNER_HEADER)
            if owner:
                scope.setdefault("state", {})["filetier_owner"] = owner
        await self.app(scope, receive, send)


class ServerThread(ThreadServer):
    """uvicorn on 127.0.0.1 and a free port, in a daemon thread; ``url`` is the MCP endpoint."""

    uvicorn_options: ClassVar[dict[str, Any]] = {"ws": "none", "http": "h11"}

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"


@contextlib.asynccontextmanager
async def connect(
    server: ServerThread,
    owner: str | None,
    mode: str = "auto",
    *,
    token: str | None = None,
    message_handler: Any = None,
) -> AsyncIterator[Client]:
    headers = {OWNER_HEADER: owner} if owner else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(server.url, http_client=http)
        async with Client(transport, mode=mode, message_handler=message_handler) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


class ListChanges:
    """Counts the ``notifications/resources/list_changed`` a client receives: on its
    session (handshake era, through ``message_handler``) or on a ``subscriptions/listen``
    stream it opens (2026-07-28)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    async def on_message(self, message: object) -> None:
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/resources/list_changed":
            self._seen()

    def _seen(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def listen(self, client: Client, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with client.listen(resources_list_changed=True) as subscription:
            assert subscription.honored.resources_list_changed is True
            task_status.started()
            async for _event in subscription:
                self._seen()

    async def more_than(self, seen: int) -> int:
        with anyio.fail_after(10):
            while self.count <= seen:
                await self._changed.wait()
        return self.count
