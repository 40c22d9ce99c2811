"""What one MCP request acts on: the server's lifespan state and the caller's owner.

Over streamable HTTP the HTTP layer authenticates every request and leaves the owner in
the ASGI scope (``scope["state"]["filetier_owner"]``, also ``request.state.owner``); the SDK
hands each handler the Starlette request that carried the message, so the owner is read
per *request*, not per MCP session. Over stdio there is no request and the process's
configured owner (``settings.owner``) applies. Everything a tool touches goes through
``store.as_owner(owner)``, so one owner never reaches another's files.

The server's filesystem is the operator's. Over stdio (and in-process) the caller is the
operator and path tools use the configured roots. A caller over HTTP gets only its own
folder in each root (``<root>/<owner folder>``, see :func:`filetier.paths.owner_folder`),
and its path errors name only its own input, never a server path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from filetier.config import Settings

if TYPE_CHECKING:
    from filetier.interfaces.mcp.changes import FileChanges
from filetier.interfaces.mcp.owner import NO_OWNER_MESSAGE, request_owner
from filetier.links import LinkAuthority
from filetier.paths import AllowedRoots, owner_folder
from filetier.store import FileStore


@dataclass(frozen=True, slots=True)
class AppState:
    """The MCP server's lifespan state: one store shared by every session and request."""

    settings: Settings
    store: FileStore
    roots: AllowedRoots  # the operator's: where upload sources and destinations may be
    links: LinkAuthority  # download links (the HTTP process's key and database)
    changes: FileChanges  # resources/list_changed, to each owner's own sessions
    # Each remote owner's folders inside those roots, built on first use.
    owner_roots: dict[str, AllowedRoots] = field(default_factory=dict)

    def roots_of(self, owner: str) -> AllowedRoots:
        roots = self.owner_roots.get(owner)
        if roots is None:
            folder = owner_folder(owner)
            roots = AllowedRoots([root / folder for root in self.roots.roots])
            self.owner_roots[owner] = roots
        return roots


def app_state(ctx: Context[AppState, Any]) -> AppState:
    return ctx.request_context.lifespan_context


def caller_owner(ctx: Context[AppState, Any]) -> str:
    owner = request_owner(ctx.request_context.request, app_state(ctx).settings)
    if owner is None:
        raise ToolError(NO_OWNER_MESSAGE)
    return owner


def remote_roots(ctx: Context[AppState, Any]) -> AllowedRoots | None:
    """The roots of a remote (HTTP) caller: its own folders; None for the operator."""
    request = ctx.request_context.request
    if request is None:
        return None
    return app_state(ctx).roots_of(caller_owner(ctx))


def request_base(ctx: Context[AppState, Any]) -> str | None:
    """The address an HTTP caller reached this server at (for link URLs); None on stdio."""
    request = ctx.request_context.request
    base = getattr(request, "base_url", None)
    return str(base) if base is not None else None


def caller_store(ctx: Context[AppState, Any]) -> FileStore:
    """The shared store, scoped to the caller's owner."""
    return app_state(ctx).store.as_owner(caller_owner(ctx))


def require_operator(ctx: Context[AppState, Any], what: str) -> FileStore:
    """The store, for whole-store maintenance: only the process's own owner may run it.

    Verify and cleanup look at every owner's content (hashes, delivered paths), so over a
    shared HTTP endpoint they belong to the operator, never to one tenant of many.
    """
    state = app_state(ctx)
    owner = caller_owner(ctx)
    if owner != state.settings.owner:
        raise ToolError(
            f"{what} covers every owner's files, so only the server's operator may run it "
            "(`filetier verify` / `filetier cleanup` on the server host)"
        )
    return state.store.as_owner(owner)
