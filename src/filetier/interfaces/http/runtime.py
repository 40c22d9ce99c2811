"""What one server process holds between startup and shutdown: the open store, how
requests are authenticated, the MCP app mounted at ``/mcp``, the metrics.

The lifespan opens one :class:`FileStore`, decides the authentication mode, starts the
MCP app's own lifespan, and on shutdown closes the store (which writes the batched
bookkeeping) after the last request has finished.

Mounting MCP: if ``filetier.interfaces.mcp.server`` defines ``mcp_http_app``, it is called
as ``mcp_http_app(settings, get_store)`` where ``get_store()`` returns the open root
``FileStore`` (requests use ``get_store().as_owner(owner)``, with ``owner`` read from
``scope["state"]["filetier_owner"]``). It returns an ASGI app, whose own lifespan (e.g. a
Starlette app from the SDK's ``streamable_http_app()``, which runs the session manager)
runs inside this one, or a pair ``(app, lifespan)`` where ``lifespan()`` is an async
context manager. The app receives every ``/mcp`` request after authentication, with the
path unchanged, so the SDK's default ``streamable_http_path="/mcp"`` serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message

from filetier.config import Settings
from filetier.errors import ConfigError, StoreClosedError
from filetier.interfaces.http.access import OWNER_STATE_KEY, TokenCache, is_loopback
from filetier.interfaces.http.content import ReadAheadBudget
from filetier.interfaces.http.errors import Redactor
from filetier.interfaces.http.metrics import HttpMetrics
from filetier.interfaces.http.turns import LargeBodies
from filetier.interfaces.http.verified import VerifiedCopies
from filetier.links import LinkAuthority
from filetier.store import FileStore
from filetier.tokens import TokenAuthority

log = logging.getLogger("filetier.http")

AUTH_REQUIRED_MESSAGE = (
    "no API token is configured: set FILETIER_API_TOKENS=owner:token (tokens of 16+ "
    "characters) or create one with `filetier token create`. FILETIER_ALLOW_NO_AUTH=true "
    "serves without tokens, and only on a loopback address"
)

McpLifespan = Callable[[], AbstractAsyncContextManager[Any]]


class Runtime:
    def __init__(self, settings: Settings, bind_host: str, bind_port: int) -> None:
        self.settings = settings
        self.bind_host = bind_host
        self.bind_port = bind_port
        self.metrics = HttpMetrics()
        self.redact = Redactor(settings)
        self.verified = VerifiedCopies(settings.verified_copy_seconds)
        self.read_ahead = ReadAheadBudget(settings.http_read_ahead_bytes)
        self.large_bodies = LargeBodies()
        self.store: FileStore | None = None
        self.no_auth_owner: str | None = None
        self._tokens: TokenCache | None = None
        self.mcp_app: ASGIApp | None = None
        self._mcp_lifespan: McpLifespan | None = None
        self.startup_error: BaseException | None = None
        self._links: LinkAuthority | None = None

    # -- the store --------------------------------------------------------------------

    def root_store(self) -> FileStore:
        if self.store is None:
            raise StoreClosedError("the server is starting or stopping; try again")
        return self.store

    def store_for(self, request: Request) -> FileStore:
        owner = request.scope.get("state", {}).get(OWNER_STATE_KEY)
        if not isinstance(owner, str):
            # Only reachable if a /v1 route were mounted outside the access gate.
            raise StoreClosedError("request reached a route without an authenticated owner")
        return self.root_store().as_owner(owner)

    def link_authority(self) -> LinkAuthority:
        if self._links is None:
            raise StoreClosedError("the server is starting or stopping; try again")
        return self._links

    # -- authentication ---------------------------------------------------------------

    async def owner_for(self, token: str | None) -> str | None:
        if self.no_auth_owner is not None:
            return self.no_auth_owner
        if token is None or self._tokens is None:
            return None
        return await self._tokens.owner_for(token)

    async def metrics_access(self, token: str | None) -> bool:
        """Whether ``token`` may read /metrics: the metrics token, or an operator's token.

        The counters are the whole server's (every owner's requests and bytes), so an
        owner's token is not enough; the operator is the owner this process runs as
        (``FILETIER_OWNER``), as for MCP's whole-store maintenance tools.
        """
        expected = self.settings.metrics_token_hash
        if (
            token is not None
            and expected is not None
            and hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), expected)
        ):
            return True
        owner = await self.owner_for(token)
        return owner is not None and owner == self.settings.owner

    async def _choose_auth(self, store: FileStore) -> None:
        authority = TokenAuthority(self.settings, store.db)
        if authority.has_tokens_configured or await authority.list():
            self._tokens = TokenCache(authority.owner_for)
            return
        if self.settings.allow_no_auth and is_loopback(self.bind_host):
            self.no_auth_owner = self.settings.owner
            log.warning(
                "serving without authentication on %s (FILETIER_ALLOW_NO_AUTH): every "
                "request acts as owner %r",
                self.bind_host,
                self.settings.owner,
            )
            return
        if self.settings.allow_no_auth:
            raise ConfigError(
                f"FILETIER_ALLOW_NO_AUTH is honoured only on a loopback address, not on "
                f"{self.bind_host}: configure API tokens (FILETIER_API_TOKENS)"
            )
        raise ConfigError(AUTH_REQUIRED_MESSAGE)

    # -- MCP --------------------------------------------------------------------------

    def mount_mcp(self) -> None:
        try:
            from filetier.interfaces.mcp import server as mcp_server
        except ModuleNotFoundError as exc:
            if exc.name in {"filetier.interfaces.mcp", "filetier.interfaces.mcp.server"}:
                return  # this build has no MCP interface
            raise
        factory = getattr(mcp_server, "mcp_http_app", None)
        if factory is None:
            return
        built: Any = factory(self.settings, self.root_store)
        if isinstance(built, tuple):
            self.mcp_app, self._mcp_lifespan = built
        else:
            self.mcp_app = built

    @asynccontextmanager
    async def _mcp_running(self) -> AsyncIterator[None]:
        if self._mcp_lifespan is not None:
            async with self._mcp_lifespan():
                yield
        elif self.mcp_app is not None:
            async with asgi_lifespan(self.mcp_app):
                yield
        else:
            yield

    # -- lifespan ---------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        store = FileStore(self.settings)
        try:
            await store.start()
        except BaseException as exc:
            self.startup_error = exc
            raise
        try:
            try:
                await self._choose_auth(store)
            except BaseException as exc:
                self.startup_error = exc
                raise
            self._links = LinkAuthority(self.settings, store.db)
            self.store = store
            async with self._mcp_running():
                yield
        finally:
            self.store = None
            await store.close()


async def _next_message(outbox: asyncio.Queue[Message], task: asyncio.Task[None]) -> Message | None:
    """The app's next lifespan message, or None when it returned without one."""
    getter = asyncio.ensure_future(outbox.get())
    done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return None


@asynccontextmanager
async def asgi_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan protocol (startup, then shutdown) around the block."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

    async def send(message: Message) -> None:
        await outbox.put(message)

    async def run() -> None:
        await app(scope, inbox.get, send)

    task = asyncio.create_task(run())
    await inbox.put({"type": "lifespan.startup"})
    reply = await _next_message(outbox, task)
    if reply is None:
        # The app finished (or failed) without answering: it has no lifespan to run.
        if not task.cancelled() and task.exception() is not None:
            log.debug("the MCP app does not support the lifespan protocol")
        yield
        return
    if reply["type"] == "lifespan.startup.failed":
        with contextlib.suppress(BaseException):
            await task
        raise ConfigError(f"the MCP app failed to start: {reply.get('message', '')}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await _next_message(outbox, task)
        with contextlib.suppress(Exception):
            await task
