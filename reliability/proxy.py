"""A tiny fault-injecting HTTP/1.1 reverse proxy, to put in front of an S3 server.

    proxy = FaultProxy("http://127.0.0.1:7480").start()   # its own thread and loop
    settings = Settings(s3_endpoint=proxy.url, ...)
    proxy.fail_next(2, 503, method="PUT")                  # the next two PUTs get a 503
    proxy.fail_next(1, 500, method="PUT", after_body=64 * 1024)  # mid-upload
    proxy.drop_next(1, method="PUT", after_body=64 * 1024)       # cut the request
    proxy.cut_next(1, method="GET", after_bytes=100_000)         # cut the response
    proxy.go_down(); proxy.come_back()                     # the endpoint dies, returns

Each client request is forwarded on a fresh upstream connection (``Connection: close``)
and the response relayed until the upstream closes it, so the proxy never has to
understand response framing; the client's connection is kept alive between requests.
Request bodies are framed by ``Content-Length`` or chunked transfer coding.

An injected status carries an S3-style XML error body, so clients parse it as the server's
own answer. Every request is logged with what was done to it (``log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlparse

_REASONS = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}
_CODES = {500: "InternalError", 503: "ServiceUnavailable", 429: "SlowDown"}


@dataclass
class _Rule:
    kind: str  # "status", "drop" (close without answering), "cut" (cut the response), "delay"
    count: int
    method: str | None = None
    status: int = 503
    after_body: int | None = None  # read this much request body first
    after_bytes: int = 0  # response body bytes relayed before the cut
    seconds: float = 0.0
    code: str | None = None  # the S3 error code of an injected status
    message: str = "injected by the fault proxy"

    def matches(self, method: str) -> bool:
        return self.count > 0 and (self.method is None or self.method == method)


class FaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urlparse(upstream)
        self._up_host = parsed.hostname or "127.0.0.1"
        self._up_port = parsed.port or 80
        self._host = host
        self._port = port
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        # (method, path, headers with lower-case names) of every request, as received
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._listen())
            started.set()
            loop.run_forever()
            # As asyncio.run does: connections still being served are cancelled and their
            # transports closed before the loop is (left pending, each one warned of an
            # unclosed transport when collected, which failed whichever test came next).
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:  # gather() of nothing asks for this thread's (absent) current loop
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))  # the aborts' connection_lost callbacks
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    def _call(self, fn: Callable[[], object], timeout: float = 10) -> None:
        assert self._loop is not None
        done = threading.Event()

        def wrapped() -> None:
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(lambda _t: done.set())
                    return
            except BaseException:
                done.set()
                raise
            done.set()

        self._loop.call_soon_threadsafe(wrapped)
        done.wait(timeout)

    def stop(self) -> None:
        if self._loop is None:
            return
        self.go_down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # -- faults ---------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        method: str | None = None,
        after_body: int | None = None,
        code: str | None = None,
        message: str = "injected by the fault proxy",
    ) -> None:
        """Answer ``status`` to the next ``count`` requests; with ``after_body``, only after
        that many bytes of the request body arrived (the rest is not read). ``code`` and
        ``message`` go into the S3 error body."""
        self._add(
            _Rule(
                "status",
                count,
                method,
                status=status,
                after_body=after_body,
                code=code,
                message=message,
            )
        )

    def drop_next(self, count: int, *, method: str | None = None, after_body: int = 0) -> None:
        """Close the connection without an answer after ``after_body`` body bytes."""
        self._add(_Rule("drop", count, method, after_body=after_body))

    def cut_next(self, count: int, *, method: str | None = None, after_bytes: int = 0) -> None:
        """Forward the request, relay the response head and ``after_bytes`` of its body,
        then reset the connection."""
        self._add(_Rule("cut", count, method, after_bytes=after_bytes))

    def delay_next(self, count: int, seconds: float, *, method: str | None = None) -> None:
        """Hold the next ``count`` requests for ``seconds`` before forwarding them."""
        self._add(_Rule("delay", count, method, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def go_down(self) -> None:
        """The endpoint dies: stop listening and reset every open connection."""

        def down() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._clients):
                writer.transport.abort()
            self._clients.clear()

        self._call(down)

    def come_back(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen)

    def _take(self, method: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method):
                    rule.count -= 1
                    return rule
        return None

    def count(self, what: str) -> int:
        return sum(1 for entry in self.log if entry[2].startswith(what))

    # -- the proxy ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._clients.discard(writer)
            writer.transport.abort()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = [line for line in lines[1:] if line]
        names = {h.split(":", 1)[0].strip().lower(): h.split(":", 1)[1].strip() for h in headers}
        self.requests.append((method, target, names))
        length = int(names.get("content-length", "0") or 0)
        chunked = "chunked" in names.get("transfer-encoding", "").lower()
        rule = self._take(method)

        if rule is not None and rule.kind in ("status", "drop"):
            if rule.after_body is None:
                await _drain_body(reader, length, chunked)
            else:
                await _read_some_body(
                    reader, min(rule.after_body, length) if not chunked else rule.after_body
                )
            if rule.kind == "drop":
                self.log.append((method, target, f"dropped after {rule.after_body} body bytes"))
                writer.transport.abort()
                return False
            status = rule.status
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><Error>'
                f"<Code>{rule.code or _CODES.get(status, 'InternalError')}</Code>"
                f"<Message>{rule.message}</Message></Error>"
            ).encode()
            keep_alive = rule.after_body is None
            writer.write(
                (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    "Content-Type: application/xml\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                ).encode()
                + body
            )
            await writer.drain()
            where = "" if rule.after_body is None else f" after {rule.after_body} body bytes"
            self.log.append((method, target, f"answered {status}{where}"))
            return keep_alive

        if rule is not None and rule.kind == "delay":
            await asyncio.sleep(rule.seconds)
        up_reader, up_writer = await asyncio.open_connection(self._up_host, self._up_port)
        try:
            kept = [h for h in headers if h.split(":", 1)[0].strip().lower() != "connection"]
            up_writer.write(
                ("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
            )
            await _copy_body(reader, _sender(up_writer), length, chunked)
            if rule is not None and rule.kind == "cut":
                response_head = await up_reader.readuntil(b"\r\n\r\n")
                writer.write(response_head)
                if rule.after_bytes:
                    writer.write(await up_reader.readexactly(rule.after_bytes))
                await writer.drain()
                self.log.append((method, target, f"cut after {rule.after_bytes} response bytes"))
                writer.transport.abort()
                return False
            status_line = b""
            while chunk := await up_reader.read(256 * 1024):
                if not status_line:
                    status_line = chunk.split(b"\r\n", 1)[0]
                writer.write(chunk)
                await writer.drain()
            self.log.append(
                (method, target, f"forwarded {status_line.decode('latin-1', 'replace')}")
            )
        finally:
            up_writer.transport.abort()
        return b"connection: close" not in head.lower()


async def _read_some_body(reader: asyncio.StreamReader, n: int) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError):
        await reader.readexactly(n)


async def _discard(_data: bytes) -> None:
    return None


async def _drain_body(reader: asyncio.StreamReader, length: int, chunked: bool) -> None:
    await _copy_body(reader, _discard, length, chunked)


def _sender(writer: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return send


async def _copy_body(
    reader: asyncio.StreamReader,
    send: Callable[[bytes], Awaitable[None]],
    length: int,
    chunked: bool,
) -> None:
    """Pass one request body on, framed as it came (chunked, or ``length`` bytes)."""
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            await send(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, then the blank line that ends the body.
                while True:
                    line = await reader.readuntil(b"\r\n")
                    await send(line)
                    if line == b"\r\n":
                        return
            await send(await reader.readexactly(size + 2))
    remaining = length
    while remaining > 0:
        chunk = await reader.read(min(remaining, 256 * 1024))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        await send(chunk)
        remaining -= len(chunk)
