"""What every loopback provider shares.

- :class:`UvicornThread`: an ASGI app served on 127.0.0.1 in a daemon thread, started and
  stopped with bounds. Every loopback server runs on it (``testbed/provider_server.py`` for
  the OpenAI-compatible ones, ``gemini.py``, and :class:`LoopbackProvider` below).
- :class:`LoopbackProvider`: a request log, injected faults (status, optional
  ``Retry-After``) and delays, and a thread-safe file store. A provider module
  (``anthropic.py``, ``mistral.py``) supplies its routes, how it checks the key, and how
  its errors look; tests then drive it through that provider's own SDK.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MB = 1024 * 1024


class LoopbackServer(Protocol):
    """What every loopback provider server offers a test, whatever its wire protocol.

    ``tests/test_providers_contract.py`` drives all six providers through this alone.
    """

    @property
    def api_key(self) -> str: ...

    def reset(self) -> None:
        """Forget files, logs, faults and delays."""
        ...

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """The next ``count`` authorized API requests matching the filters get ``status``."""
        ...

    def forget(self, file_id: str) -> bool:
        """The provider drops a file behind filetier's back (expiry, console deletion)."""
        ...

    @property
    def upload_count(self) -> int:
        """Uploads the provider accepted."""
        ...

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every API request answered, in order."""
        ...

    @property
    def file_ids(self) -> list[str]:
        """The files the provider holds now, named as its SDK names them."""
        ...


class UvicornThread:
    """``app`` on ``127.0.0.1`` and a free port (or ``port``), served by uvicorn in a thread."""

    def __init__(self, app: ASGIApp, name: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._name = name
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when
        # the socket says it is TCP; without it every keep-alive request stalls ~40 ms on
        # Nagle + delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._sock, self._server, self._thread = sock, server, thread
        self._port = int(sock.getsockname()[1])
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)

    def stop(self, timeout: float = 10.0) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        if sock is not None:
            sock.close()
        if thread is not None and thread.is_alive():
            raise RuntimeError(f"{self._name} thread did not stop")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self._name} has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"


@dataclass
class StoredFile:
    id: str
    filename: str
    data: bytes
    created_at: float
    mime_type: str = "application/octet-stream"
    purpose: str | None = None
    expires_at: float | None = None


@dataclass
class Fault:
    count: int
    status: int
    retry_after: float | None
    path_contains: str | None
    method: str | None
    message: str | None = None  # the error text, where a server lets a test choose it

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in path


class Faults:
    """Injected failures, each used up by the next ``count`` requests it matches.

    Thread-safe: tests add faults from their thread, the server takes them from its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        message: str | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (4xx or 5xx)")
        with self._lock:
            self._pending.append(Fault(count, status, retry_after, path_contains, method, message))

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted down; None when none does."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._pending.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


@dataclass
class LoopbackState:
    """Everything the server knows; every method is safe from any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, StoredFile] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    delay: float = 0.0
    log: list[tuple[str, str, int]] = field(default_factory=list)
    # Bumped by reset(): a request that began before it (a previous test's upload whose
    # client went away) answers late, and must not land in the next test's log.
    generation: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)  # JSON bodies of chat calls
    headers: list[dict[str, str]] = field(default_factory=list)
    uploads: int = 0

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self.faults.take(method, path)

    def add(self, stored: StoredFile) -> None:
        with self.lock:
            self.files[stored.id] = stored
            self.uploads += 1

    def get(self, file_id: str) -> StoredFile | None:
        with self.lock:
            stored = self.files.get(file_id)
            expired = stored is not None and stored.expires_at is not None
            if expired and stored is not None and (stored.expires_at or 0) <= time.time():
                del self.files[file_id]
                return None
            return stored

    def remove(self, file_id: str) -> bool:
        with self.lock:
            return self.files.pop(file_id, None) is not None


class LoopbackProvider:
    """Subclasses set ``routes()``, ``authorized(request)`` and ``error(status, message)``."""

    name = "loopback"

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.state = LoopbackState()
        self._serving: UvicornThread | None = None

    # -- what a provider module supplies ---------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authorized(self, request: Request) -> Response | None:
        """None when the request may go on, else the provider's refusal."""
        raise NotImplementedError

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        raise NotImplementedError

    # -- the gate every API request passes ------------------------------------------------

    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def stats(request: Request) -> Response:
            # What testbed.provider_server.ProviderControl.stats() reads from other processes.
            return JSONResponse({"upload_count": self.upload_count, "files": len(self.file_ids)})

        inner = Starlette(routes=[*self.routes(), Route("/_control/stats", stats)])

        async def gate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
                await inner(scope, receive, send)
                return
            method, path = scope["method"], scope["path"]
            request = Request(scope, receive)
            with self.state.lock:
                began = self.state.generation

            async def logged(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    with self.state.lock:
                        if self.state.generation == began:
                            self.state.log.append((method, path, message["status"]))
                await send(message)

            with self.state.lock:
                self.state.headers.append({k.lower(): v for k, v in request.headers.items()})
                delay = self.state.delay
            if delay:
                await asyncio.sleep(delay)
            refusal = self.authorized(request)
            if refusal is None:
                fault = self.state.take_fault(method, path)
                if fault is not None:
                    headers = (
                        {"retry-after": f"{fault.retry_after:g}"}
                        if fault.retry_after is not None
                        else None
                    )
                    refusal = self.error(fault.status, f"injected {fault.status}", headers)
            if refusal is not None:
                await refusal(scope, receive, logged)
                return
            await inner(scope, receive, logged)

        return gate

    # -- running ----------------------------------------------------------------------------

    def start(self) -> Self:
        self._serving = UvicornThread(self.app(), f"{self.name} loopback server")
        self._serving.start()
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._serving is None:
            raise RuntimeError(f"{self.name} loopback server has not been started")
        return self._serving.url

    # -- observing and steering ------------------------------------------------------------

    def reset(self) -> None:
        self.state.faults.clear()
        with self.state.lock:
            self.state.files.clear()
            self.state.log.clear()
            self.state.generation += 1
            self.state.bodies.clear()
            self.state.headers.clear()
            self.state.delay = 0.0
            self.state.uploads = 0

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        self.state.faults.add(count, status, retry_after, path_contains, method=method)

    def set_delay(self, seconds: float) -> None:
        with self.state.lock:
            self.state.delay = seconds

    def forget(self, file_id: str) -> bool:
        """The provider drops a file behind filetier's back (deleted, expired)."""
        return self.state.remove(file_id)

    @property
    def upload_count(self) -> int:
        with self.state.lock:
            return self.state.uploads

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        with self.state.lock:
            return list(self.state.log)

    @property
    def chat_bodies(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.bodies)

    @property
    def seen_headers(self) -> list[dict[str, str]]:
        with self.state.lock:
            return list(self.state.headers)

    def file_bytes(self, file_id: str) -> bytes:
        stored = self.state.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

    @property
    def file_ids(self) -> list[str]:
        with self.state.lock:
            return list(self.state.files)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"
