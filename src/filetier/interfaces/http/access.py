"""Who may talk to this server, and as whom: Host checks and bearer tokens.

One pure-ASGI middleware (no per-chunk overhead on transfers) does, in order:

1. **DNS-rebinding protection**: the request carries exactly one ``Host`` header, well
   formed (a DNS name, an IPv4 address or a bracketed IPv6 address, and at most a port
   from 1 to 65535: no userinfo, spaces, lists or empty values), naming this server, i.e.
   one of ``settings.allowed_hosts`` (with or without a port; ``*.example.com`` matches
   subdomains, ``*`` any well-formed host) or the address it is bound to. Otherwise: 421.
   Liveness and readiness probes are exempt, since orchestrators call them by pod
   address; they reveal nothing but "up" and "ready".
2. **Bearer tokens** on ``/v1``, ``/mcp`` and ``/metrics``. ``/metrics`` answers only to
   ``FILETIER_METRICS_TOKEN`` or an operator's API token (see ``metrics_access``): its
   counters are the whole server's, not one owner's. Elsewhere ``Authorization: Bearer
   <token>`` is looked up
   with :class:`filetier.tokens.TokenAuthority`; a missing and a wrong token get the same
   401 with ``WWW-Authenticate: Bearer``. Positive answers for tokens stored in the
   database are reused for a few seconds (a revoked token stops working within that).
   Without any configured token the server runs only when ``allow_no_auth`` is set and it
   is bound to loopback (checked at startup); every request is then ``settings.owner``.
3. The owner goes into the request scope: ``scope["state"]["filetier_owner"]`` (what the
   MCP app mounted at ``/mcp`` reads) and ``scope["state"]["owner"]``, which Starlette
   exposes as ``request.state.owner``. On ``/mcp`` the owner is also ``scope["user"]``, an
   MCP SDK ``AuthenticatedUser``: the SDK binds each session to the user that opened it,
   and answers another owner presenting its id with the 404 of an unknown session.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
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


# A Host header (RFC 9110 7.2): uri-host [ ":" port ], where the host is a DNS name (letters,
# digits, "-", "_" and dots), an IPv4 address, or an IPv6 address in brackets. Anything
# else (userinfo, spaces, several hosts, percent-escapes) is refused before any lookup.
_HOST_HEADER = re.compile(
    r"(?P<host>\[[0-9a-f:.]{2,45}\]|[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def parse_host_header(value: str | None) -> tuple[str, int | None] | None:
    """``(host, port)`` of a well-formed Host header value (host lower-cased), else None."""
    if not value:
        return None
    match = _HOST_HEADER.fullmatch(value.lower())
    if match is None:
        return None
    host, port = match.group("host"), match.group("port")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    elif ".." in host:
        return None
    if port is None:
        return host, None
    number = int(port)
    return (host, number) if 1 <= number <= 65535 else None


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
    """Which Host headers this server answers to. ``testserver`` (the name test clients
    send by default) is not among the defaults: a test that wants it configures it."""

    def __init__(self, allowed: Iterable[str], bind_host: str, bind_port: int) -> None:
        names = {h.strip().lower() for h in allowed if h.strip()}
        self._any = "*" in names
        self._suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self._exact = {n for n in names if not n.startswith("*")}
        self._exact |= _host_forms(bind_host, bind_port)

    def allows(self, headers: Headers | str | None) -> bool:
        """Whether the request's Host names this server (``headers``: all of a request's
        headers, so that a second Host header is refused; or one value)."""
        if isinstance(headers, Headers):
            values = headers.getlist("host")
            if len(values) != 1:
                return False
            value: str | None = values[0]
        else:
            value = headers
        parsed = parse_host_header(value)
        if parsed is None:
            return False
        if self._any:
            return True
        host, port = parsed
        if host in self._exact or (port is not None and f"{host}:{port}" in self._exact):
            return True
        return host.endswith(self._suffixes) if self._suffixes else False


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


METRICS_PATH = "/metrics"


# Methods a page of another site may send without changing anything.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _protected(path: str) -> bool:
    return path in {"/v1", "/mcp"} or path.startswith(("/v1/", "/mcp/"))


def mcp_user(owner: str) -> AuthenticatedUser:
    """The owner as the MCP SDK's authenticated user: what it binds sessions to."""
    return AuthenticatedUser(
        AccessToken(token="", client_id=f"filetier-owner:{owner}", scopes=[], subject=owner)
    )


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
        metrics_access: Callable[[str | None], Awaitable[bool]] | None = None,
    ) -> None:
        self.app = app
        self._hosts = hosts
        self._owner_for = owner_for
        self._mcp_app = mcp_app
        self._metrics_access = metrics_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if path not in UNCHECKED_HOST_PATHS and not self._hosts.allows(headers):
            await self._deny(
                scope,
                receive,
                send,
                421,
                "MisdirectedRequest",
                "this server does not answer for that Host; add it to FILETIER_ALLOWED_HOSTS",
            )
            return
        if (
            _protected(path)
            and scope.get("method") not in SAFE_METHODS
            and self._foreign_page(headers)
        ):
            await self._deny(
                scope,
                receive,
                send,
                403,
                "CrossSiteRequest",
                "a page of another site cannot write to this server (its browser's Origin or "
                "Sec-Fetch-Site said so); call the API from a program, not a web page",
            )
            return
        if path == METRICS_PATH and self._metrics_access is not None:
            token = bearer_token(headers)
            if not await self._metrics_access(token):
                await self._unauthorized(
                    scope,
                    receive,
                    send,
                    token,
                    "/metrics needs FILETIER_METRICS_TOKEN or an operator's API token as "
                    "'Authorization: Bearer <token>'",
                )
                return
        elif _protected(path):
            token = bearer_token(headers)
            owner = await self._owner_for(token)
            if owner is None:
                await self._unauthorized(
                    scope,
                    receive,
                    send,
                    token,
                    "send a valid API token as 'Authorization: Bearer <token>'",
                )
                return
            state = scope.setdefault("state", {})
            state[OWNER_STATE_KEY] = owner
            state["owner"] = owner
            if _is_mcp(path):
                mcp = self._mcp_app()
                if mcp is not None:
                    scope["user"] = mcp_user(owner)
                    await mcp(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _foreign_page(self, headers: Headers) -> bool:
        """Whether a browser says the request comes from a page of another site. A page
        can send a form POST anywhere without asking (no CORS preflight); on a server
        without tokens (``--no-auth``) it would then write to the operator's store.
        Programs (curl, SDKs) send neither header."""
        if headers.get("sec-fetch-site") in {"cross-site", "same-site"}:
            return True
        origin = headers.get("origin")
        if origin is None:
            return False
        return origin == "null" or not self._hosts.allows(urlsplit(origin).netloc or None)

    async def _unauthorized(
        self, scope: Scope, receive: Receive, send: Send, token: str | None, message: str
    ) -> None:
        challenge = 'Bearer realm="filetier"'
        if token is not None:
            challenge += ', error="invalid_token"'
        await self._deny(
            scope, receive, send, 401, "Unauthorized", message, {"WWW-Authenticate": challenge}
        )

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
