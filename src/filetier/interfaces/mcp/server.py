"""filetier's MCP server: one factory, two transports.

- :func:`build_server` makes a server whose lifespan state (:class:`AppState`) holds the
  :class:`~filetier.store.FileStore`: a store passed in (the HTTP process shares its own)
  is used and left open; otherwise the lifespan opens one and closes it on exit, which
  flushes the batched download bookkeeping.
- :func:`mcp_http_app` serves it over streamable HTTP as a path-agnostic ASGI app for the
  HTTP process to route ``/mcp`` to; :func:`run_stdio` serves it over stdin/stdout.

This module is also the one boundary where domain errors become MCP errors: a
:class:`~filetier.errors.FiletierError` escaping a tool becomes a tool error (``isError``)
carrying its actionable message, and one escaping a resource read becomes a resource
error. Anything else is a crash: the SDK logs its traceback on the server and tells the
client only which tool failed.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from mcp.server import NotificationOptions
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
    UnexpectedToolError,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    TransportSecuritySettings,
)
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ResourceTemplate,
    SubscriptionsListenRequestParams,
)
from pydantic import AnyUrl
from starlette.types import Receive, Scope, Send

from filetier import __version__, logsafe
from filetier.config import Settings
from filetier.errors import FiletierError, InvalidInputError, NotFoundError, mcp_text
from filetier.interfaces.mcp.changes import FileChanges
from filetier.interfaces.mcp.context import AppState
from filetier.interfaces.mcp.owner import NO_OWNER_MESSAGE, request_owner
from filetier.interfaces.mcp.resources import (
    FILE_TEMPLATE,
    file_id_of,
    list_file_resources,
    read_file_resource,
)
from filetier.interfaces.mcp.schemas import compact_tool
from filetier.interfaces.mcp.tools import (
    NO_PROVIDER_MESSAGE,
    OPERATOR_TOOLS,
    PROVIDER_TOOLS,
    register_tools,
)
from filetier.links import LinkAuthority, link_url
from filetier.models import FileRecord
from filetier.paths import AllowedRoots
from filetier.providers.registry import configured_names
from filetier.store import FileStore

__all__ = [
    "AppState",
    "McpHttpApp",
    "SharedStore",
    "build_server",
    "mcp_http_app",
    "run_stdio",
]

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
filetier stores files by content (SHA-256) and hands them back verified, from the fastest
tier that has them. Upload with upload_file (a path on the server inside the allowed roots,
or small inline text/base64) and keep the returned file_id; find files with list_files and
file_info; write one to disk with download_file; get_provider_file_id gives an LLM
provider's id for it (uploaded at most once); get_file_text and ask_file use a provider's
text extraction. Small text files can be read as resources at filetier://files/{file_id}.
Results never contain file bytes beyond a page of text."""


class FiletierMCPServer(MCPServer[AppState]):
    """MCPServer with filetier's error boundary, its file resource template, and change
    notifications sent to each owner's own sessions (see ``changes.py``)."""

    def __init__(self, changes: FileChanges, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        low = self._lowlevel_server
        # The SDK's listen handler fans one server-wide bus out to every stream; ours
        # attaches each stream to its owner's bus.
        low.add_request_handler(
            "subscriptions/listen", SubscriptionsListenRequestParams, changes.listen
        )
        # Handshake-era clients learn from the initialize result that resources/list
        # changes are announced (the SDK reads that from NotificationOptions only).
        initialization_options = low.create_initialization_options
        low.create_initialization_options = functools.partial(  # type: ignore[method-assign]
            initialization_options, NotificationOptions(resources_changed=True)
        )

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[AppState, Any] | None = None,
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is None and name in PROVIDER_TOOLS:
            raise ToolError(NO_PROVIDER_MESSAGE.format(name=name))  # not listed, and why
        if tool is not None:
            # The SDK drops unknown arguments silently: `download_file {"dest": ...}` would
            # "succeed" into the default folder. A misspelt argument is refused instead.
            accepted = sorted(tool.parameters.get("properties", {}))
            unknown = sorted(set(arguments) - set(accepted))
            if unknown:
                raise ToolError(
                    f"{name} does not take {', '.join(repr(u[:40]) for u in unknown[:5])}; "
                    f"it accepts: {', '.join(accepted)}"
                )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            # The SDK wraps what a tool raised; a domain error is anticipated, and its
            # message is written for the caller, so it goes back as a tool error.
            # Its text comes from the error table (and says whether a retry can help).
            if isinstance(exc.__cause__, FiletierError):
                raise ToolError(mcp_text(exc.__cause__, name)) from None
            raise

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """Only the tools that can work for this caller: whole-store maintenance is listed
        for the operator alone (anyone else calling it gets the operator refusal)."""
        tools = await self.list_tools()
        state = ctx.lifespan_context
        if request_owner(ctx.request, state.settings) != state.settings.owner:
            tools = [tool for tool in tools if tool.name not in OPERATOR_TOOLS]
        providers = configured_names(state.settings)
        return ListToolsResult(tools=[compact_tool(tool, providers) for tool in tools])

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """The caller's own files, a page at a time (the SDK's would list static ones)."""
        state = ctx.lifespan_context
        owner = request_owner(ctx.request, state.settings)
        if owner is None:
            raise MCPError(code=INVALID_PARAMS, message=NO_OWNER_MESSAGE)
        cursor = params.cursor if params is not None else None
        try:
            return await list_file_resources(state.store.as_owner(owner), cursor)
        except InvalidInputError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None

    async def list_resource_templates(self) -> list[ResourceTemplate]:
        return [*await super().list_resource_templates(), FILE_TEMPLATE]

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[AppState, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        file_id = file_id_of(str(uri))
        if file_id is None:
            return await super().read_resource(uri, context)
        try:
            request_context = context.request_context if context is not None else None
        except ValueError:
            request_context = None
        if request_context is None:
            raise ResourceError(f"{uri} can only be read within an MCP request")
        state = request_context.lifespan_context
        owner = request_owner(request_context.request, state.settings)
        if owner is None:
            raise ResourceError(NO_OWNER_MESSAGE)
        store = state.store.as_owner(owner)
        make_link = None
        base = getattr(request_context.request, "base_url", None)
        if base is not None:  # over HTTP: a link the client fetches where it runs

            async def make_link(record: FileRecord) -> str:
                minted = await state.links.mint(
                    owner, record.file_id, expires_in=min(3600, state.settings.link_max_seconds)
                )
                return link_url(state.settings, minted.token, str(base))

        try:
            return [await read_file_resource(store, file_id, make_link)]
        except (NotFoundError, InvalidInputError) as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except FiletierError as exc:
            raise ResourceError(str(exc)) from None


SharedStore = FileStore | Callable[[], FileStore]
"""An open store, or a function returning it once open (the HTTP process opens its store
in its own lifespan, after the MCP app has been built, and before this lifespan runs)."""


def _lifespan(
    settings: Settings, shared: SharedStore | None, changes: FileChanges
) -> Callable[[MCPServer[AppState]], AbstractAsyncContextManager[AppState]]:
    @asynccontextmanager
    async def serving(store: FileStore) -> AsyncIterator[AppState]:
        roots = AllowedRoots(settings.allowed_roots)
        unsubscribe = store.on_files_changed(changes.files_changed)
        try:
            yield AppState(settings, store, roots, LinkAuthority(settings, store.db), changes)
        finally:
            unsubscribe()
            await changes.close()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        if shared is not None:
            # Whoever opened this store closes it, after its last request.
            async with serving(shared() if callable(shared) else shared) as state:
                yield state
            return
        async with FileStore(settings) as store, serving(store) as state:
            yield state  # closing the store (after serving) flushes download bookkeeping

    return lifespan


def build_server(settings: Settings, *, store: SharedStore | None = None) -> MCPServer[AppState]:
    """A new MCP server for ``settings``.

    ``store``: a store to share, used as is and left open (or a function returning it,
    called when the server starts). Without one, the server opens its own and closes it.
    """
    # Path tools act inside the roots: refuse, before serving, roots over filetier's files.
    settings.refuse_roots_over_the_store()
    changes = FileChanges(settings)
    server = FiletierMCPServer(
        changes,
        name="filetier",
        title="filetier file store",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=_lifespan(settings, store, changes),
        # The SDK configures root logging (to stderr) at this level unless it already is.
        log_level="WARNING",
        middleware=[changes.track_session],
    )
    register_tools(server, settings)
    return server


# -- streamable HTTP -----------------------------------------------------------------------


# The Host check against DNS rebinding is the HTTP layer's (it runs before authentication,
# with the same host rules as /v1); the SDK would otherwise apply a second, different list.
BEHIND_HTTP_LAYER = TransportSecuritySettings(enable_dns_rebinding_protection=False)


class McpHttpApp:
    """The MCP endpoint over streamable HTTP, as one ASGI app that ignores its path.

    Hand it the endpoint's requests (filetier's HTTP layer calls it for ``/mcp`` after
    authentication; in a router, ``Route("/mcp", endpoint=app)``: a ``Mount`` would answer
    ``/mcp`` with a redirect to ``/mcp/``), and run its lifespan inside the parent's, where
    the session manager's task group lives: :meth:`lifespan`, or the ASGI lifespan protocol
    this app also speaks (so uvicorn can serve it on its own).
    """

    def __init__(
        self,
        server: MCPServer[AppState],
        settings: Settings,
        *,
        transport_security: TransportSecuritySettings = BEHIND_HTTP_LAYER,
    ) -> None:
        # Inline uploads arrive as JSON (base64 grows them by a third): let them through.
        max_body = max(
            DEFAULT_MAX_REQUEST_BODY_SIZE, settings.inline_upload_max_bytes * 4 // 3 + 64 * 1024
        )
        # Builds the session manager; the Starlette wrapper it returns is not used.
        server.streamable_http_app(
            streamable_http_path="/",
            transport_security=transport_security,
            max_request_body_size=max_body,
        )
        self.server = server
        self.session_manager: StreamableHTTPSessionManager = server.session_manager

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Start the session manager (and the server's lifespan); once per app."""
        return self.session_manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.session_manager.handle_request(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        started = False
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except Exception as exc:
            log.exception("MCP app lifespan failed")
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def mcp_http_app(
    settings: Settings,
    store: SharedStore | None = None,
    *,
    transport_security: TransportSecuritySettings = BEHIND_HTTP_LAYER,
) -> McpHttpApp:
    """The streamable-HTTP MCP app sharing ``store``: the HTTP process's store, or a
    function returning it once open (see :func:`build_server`).

    Each request's owner is read from ``scope["state"]["filetier_owner"]``, which the
    authenticating layer in front of this app must set; requests without one are refused.
    That layer also checks the Host header; pass ``transport_security`` to have the SDK
    check Host and Origin again here.
    """
    return McpHttpApp(
        build_server(settings, store=store), settings, transport_security=transport_security
    )


# -- stdio ---------------------------------------------------------------------------------


def run_stdio(settings: Settings) -> None:
    """Serve MCP over stdin/stdout until the client closes stdin (blocking).

    Logs go to stderr: stdout carries the protocol (the SDK also points fd 1 at stderr
    while it serves, so stray prints cannot corrupt it). Returns normally; the caller may
    then ``os._exit`` to skip interpreter finalisation.
    """
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    logsafe.install_on_root()
    server = build_server(settings)
    try:
        anyio.run(server.run_stdio_async)
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        sys.stderr.flush()
