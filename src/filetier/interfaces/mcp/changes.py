"""``notifications/resources/list_changed``, per owner: a file added or deleted by owner A
reaches the MCP sessions of owner A, and no one else's.

The store announces every committed upload or delete with its owner
(:meth:`FileStore.on_files_changed`), whichever interface made it: an MCP tool, the HTTP
API, the web console or the library in this process. :class:`FileChanges` forwards the
announcement to the owner's listeners, in both protocol eras the SDK serves:

- 2026-07-28 clients open a ``subscriptions/listen`` stream. Each owner has its own bus
  and its own SDK ``ListenHandler``; a stream is attached to the bus of the owner who
  opened it (the HTTP request's owner, the operator over stdio), so an event published
  for A never enters B's streams. The SDK's one server-wide bus would fan out to all.
- Handshake-era (2025) clients get the notification on their session's standalone
  channel (streamable HTTP's GET stream, or stdio). A session is filed under the owner
  of the requests it carries, as the server sees them (:class:`SessionTracker`): an
  HTTP session is bound to the owner whose token opened it (the HTTP layer answers
  another token presenting its id with 404).

B learns nothing of A, not even from timing: B's sessions are not sent anything when A
changes files, and A's upload answers without waiting for any notification (they are
sent from a task of their own; a burst of changes in one loop turn becomes one).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ListenHandler, ResourcesListChanged, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, SubscriptionsListenRequestParams, SubscriptionsListenResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from filetier.config import Settings
from filetier.interfaces.mcp.owner import NO_OWNER_MESSAGE, request_owner

log = logging.getLogger(__name__)

#: Open ``subscriptions/listen`` streams one owner may hold (the SDK's default is 1024
#: for a whole server).
MAX_STREAMS_PER_OWNER = 64
#: Handshake-era sessions remembered per owner, most recently active first; an older
#: one stops being notified (it can still list resources when it asks).
MAX_SESSIONS_PER_OWNER = 32
#: Key of the one handshake-era session over stdio (one client per process).
_STDIO = "stdio"


class _OwnerBus:
    """One owner's fan-out to its listen streams (the SDK's ``SubscriptionBus`` shape),
    with a synchronous publish for the store's synchronous callback."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    def publish_now(self, event: ServerEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # one broken stream must not starve the others
                log.exception("listen stream refused an event")

    async def publish(self, event: ServerEvent) -> None:
        self.publish_now(event)
        await asyncio.sleep(0)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener
        return lambda: self._listeners.pop(token, None) and None


class FileChanges:
    """Per-owner change notifications: the store's callback on one side, listen streams
    and handshake-era sessions on the other. One per MCP server (its lifespan state)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._buses: dict[str, _OwnerBus] = {}
        self._listen: dict[str, ListenHandler] = {}
        self._sessions: dict[str, OrderedDict[str, ServerSession]] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the store's side ------------------------------------------------------------------

    def files_changed(self, owner: str) -> None:
        """The store's ``on_files_changed`` callback: on the event loop, never blocks."""
        if owner in self._pending:
            return  # already due in this loop turn: one notification says it all
        if owner not in self._buses and owner not in self._sessions:
            return  # nobody of this owner listens
        self._pending.add(owner)
        task = asyncio.get_running_loop().create_task(self._notify(owner))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, owner: str) -> None:
        await asyncio.sleep(0)  # let the rest of a burst (a batch of uploads) join in
        self._pending.discard(owner)
        bus = self._buses.get(owner)
        if bus is not None:
            bus.publish_now(ResourcesListChanged())
        for session in list(self._sessions.get(owner, {}).values()):
            try:
                await session.send_resource_list_changed()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                # A session that went away; the next change tries again.
                log.debug("resources/list_changed not delivered: %r", exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for handler in self._listen.values():
            handler.close()

    # -- 2026-07-28: subscriptions/listen --------------------------------------------------

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """The ``subscriptions/listen`` handler: a stream on the caller's own bus."""
        owner = request_owner(ctx.request, self._settings)
        if owner is None:
            raise MCPError(code=INVALID_PARAMS, message=NO_OWNER_MESSAGE)
        handler = self._listen.get(owner)
        if handler is None:
            bus = self._buses.setdefault(owner, _OwnerBus())
            handler = ListenHandler(bus, max_subscriptions=MAX_STREAMS_PER_OWNER)
            self._listen[owner] = handler
        return await handler(ctx, params)

    # -- handshake era: the sessions each owner's requests arrive on -----------------------

    async def track_session(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Server middleware: file a handshake-era session under its requests' owner."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS and ctx.method != "initialize":
            key = _session_key(ctx.request)
            owner = request_owner(ctx.request, self._settings)
            if key is not None and owner is not None:
                sessions = self._sessions.setdefault(owner, OrderedDict())
                sessions[key] = ctx.session
                sessions.move_to_end(key, last=False)
                while len(sessions) > MAX_SESSIONS_PER_OWNER:
                    sessions.popitem()
        return await call_next(ctx)


def _session_key(request: object) -> str | None:
    """The transport session a request belongs to: its ``Mcp-Session-Id`` over HTTP, the
    one stdio session without a request; None for a session-less HTTP request."""
    if request is None:
        return _STDIO
    headers = getattr(request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    return session_id if isinstance(session_id, str) and session_id else None
