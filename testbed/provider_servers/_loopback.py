"""What every loopback provider shares: a uvicorn thread on 127.0.0.1, a request log,
injected faults (status, optional ``Retry-After``) and delays, and a thread-safe file store.

A provider module (``anthropic.py``, ``mistral.py``) supplies its routes, how it checks
the key, and how its errors look; tests then drive it through that provider's own SDK.
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
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
MB = 1024 * 1024


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


@dataclass
class LoopbackState:
    """Everything the server knows; every method is safe from any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, StoredFile] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    delay: float = 0.0
    log: list[tuple[str, str, int]] = field(default_factory=list)
    # Bumped by reset(): a request that began before it (a previous test's upload whose
    # client went away) answers late, and must not land in the next test's log.
    generation: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)  # JSON bodies of chat calls
    headers: list[dict[str, str]] = field(default_factory=list)
    uploads: int = 0

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (fault.method is None or fault.method == method) and (
                    fault.path_contains is None or fault.path_contains in path
                ):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._port = 0

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
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self.app(),
            log_config=None,
            log_level=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._sock, self._server, self._thread = sock, server, thread
        self._port = int(sock.getsockname()[1])
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} loopback server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(10)
        if sock is not None:
            sock.close()

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
        return f"http://127.0.0.1:{self._port}"

    # -- observing and steering ------------------------------------------------------------

    def reset(self) -> None:
        with self.state.lock:
            self.state.files.clear()
            self.state.faults.clear()
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
        with self.state.lock:
            self.state.faults.append(Fault(count, status, retry_after, path_contains, method))

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
