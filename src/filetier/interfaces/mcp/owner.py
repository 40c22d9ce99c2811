"""Who is asking: the owner of the transport request that carried an MCP message.

Below both the request context (:mod:`filetier.interfaces.mcp.context`) and the
list-change notifier (:mod:`filetier.interfaces.mcp.changes`), which both need it.
"""

from __future__ import annotations

from collections.abc import Mapping

from filetier.config import Settings

#: Keys of ``scope["state"]`` that may carry the authenticated owner, in order of preference.
OWNER_STATE_KEYS = ("filetier_owner", "owner")

NO_OWNER_MESSAGE = (
    "this request carries no authenticated owner: the MCP endpoint must be served behind "
    "filetier's HTTP authentication (send the bearer token of your owner)"
)


def request_owner(request: object, settings: Settings) -> str | None:
    """The owner of the transport request that carried this message.

    No request (stdio, in-process) means the process's own owner. ``None`` means an HTTP
    request without an owner in its state: callers refuse it, because the app must sit
    behind the authenticating layer and guessing would hand one caller another's files.
    """
    if request is None:
        return settings.owner
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, Mapping) else None
    if isinstance(state, Mapping):
        for key in OWNER_STATE_KEYS:
            owner = state.get(key)
            if isinstance(owner, str) and owner:
                return owner
    return None
