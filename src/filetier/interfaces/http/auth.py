"""Who may talk to this server, and as whom: Host checks and bearer tokens.

One pure-ASGI middleware (no per-chunk overhead on transfers) does, in order:

1. **DNS-rebinding protection**: the ``Host`` header must name this server, i.e. one of
   ``settings.allowed_hosts`` (with or without a port; ``*.example.com`` matches
   subdomains, ``*`` anything) or the address it is bound to. Otherwise: 421. Liveness
   and readiness probes are exempt, since orchestrators call them by pod address.
2. **Bearer tokens** on ``/v1`` and ``/mcp``: ``Authorization: Bearer <token>`` is looked up
   with :class:`filetier.auth.TokenAuthority`; a missing and a wrong token get the same
   401 with ``WWW-Authenticate: Bearer``. Positive answers for tokens stored in the
   database are reused for a few seconds (a revoked token stops working within that).
   Without any configured token the server runs only when ``allow_no_auth`` is set and it
   is bound to loopback (checked at startup); every request is then ``settings.owner``.
3. The owner goes into the request scope: ``scope["state"]["filetier_owner"]`` (what the
   MCP app mounted at ``/mcp`` reads) and ``scope["state"]["owner"]``, which Starlette
   exposes as ``request.state.owner``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from filetier.interfaces.http.errors import error_response

OWNER_STATE_KEY = "filetier_owner"
UNCHECKED_HOST_PATHS = frozenset({"/healthz", "/readyz"})
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_MAX = 1024

Resolver = Callable[[str], Awaitable[str | None]]


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_forms(host: str, port: int | None) -> set[str]:
    """``host`` as a Host header may spell it: bare, bracketed (IPv6), with the port."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    forms = {host}
    if port is not None:
        forms.add(f"{host}:{port}")
    return forms


class HostPolicy:
    def __init__(self, allowed: Iterable[str], bind_host: str, bind_port: int) -> None:
        names = {h.strip().lower() for h in allowed if h.strip()}
        self._any = "*" in names
        self._suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self._exact = {n for n in names if not n.startswith("*")}
        self._exact |= _host_forms(bind_host, bind_port)

    def allows(self, header: str | None) -> bool:
        if self._any:
            return True
        if not header:
            return False
        host = header.strip().lower()
        if host in self._exact:
            return True
        if host.startswith("["):
            name = host[: host.find("]") + 1] if "]" in host else host
        else:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit():
                name = host
        return name in self._exact or (bool(name) and name.endswith(self._suffixes))


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class TokenCache:
    """Owners of recently seen good tokens, by the token's SHA-256, for a few seconds."""

    def __init__(self, resolve: Resolver, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self._resolve = resolve
        self._ttl = ttl
        self._known: dict[str, tuple[float, str]] = {}

    async def owner_for(self, token: str) -> str | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._known.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        owner = await self._resolve(token)
        if owner is None:
            self._known.pop(key, None)
            return None
        if len(self._known) >= TOKEN_CACHE_MAX:
            self._known.clear()
        self._known[key] = (now + self._ttl, owner)
        return owner


def _protected(path: str) -> bool:
    return path in {"/v1", "/mcp"} or path.startswith(("/v1/", "/mcp/"))


def _is_mcp(path: str) -> bool:
    return path == "/mcp" or path.startswith("/mcp/")


class AccessGate:
    """Host check, bearer auth and owner resolution in front of the routes and /mcp.

    ``owner_for`` and ``mcp_app`` are read at request time from the runtime that the
    lifespan fills in, so the gate can be built before the store is open.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: HostPolicy,
        owner_for: Callable[[str | None], Awaitable[str | None]],
        mcp_app: Callable[[], ASGIApp | None],
    ) -> None:
        self.app = app
        self._hosts = hosts
        self._owner_for = owner_for
        self._mcp_app = mcp_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if path not in UNCHECKED_HOST_PATHS and not self._hosts.allows(headers.get("host")):
            await self._deny(
                scope,
                receive,
                send,
                421,
                "MisdirectedRequest",
                "this server does not answer for that Host; add it to FILETIER_ALLOWED_HOSTS",
            )
            return
        if _protected(path):
            token = bearer_token(headers)
            owner = await self._owner_for(token)
            if owner is None:
                challenge = 'Bearer realm="filetier"'
                if token is not None:
                    challenge += ', error="invalid_token"'
                await self._deny(
                    scope,
                    receive,
                    send,
                    401,
                    "Unauthorized",
                    "send a valid API token as 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": challenge},
                )
                return
            state = scope.setdefault("state", {})
            state[OWNER_STATE_KEY] = owner
            state["owner"] = owner
            if _is_mcp(path):
                mcp = self._mcp_app()
                if mcp is not None:
                    await mcp(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await error_response(status, kind, message, headers)(scope, receive, send)
