"""Deadlines for slow clients: uvicorn's HTTP/1.1 protocol with a head timeout, a
minimum body rate and a minimum response rate.

uvicorn (h11) waits forever for a request's head and body, and any byte received cancels
its keep-alive timer, so a client trickling one byte a second holds a connection (a file
descriptor, a buffer, perhaps a staged upload) for as long as it likes: the slow-loris
attack. This protocol closes such connections:

- **head**: the request line and headers must be complete within ``head_timeout`` seconds
  of the connection opening, or, on a kept-alive connection, of the next request's first
  byte; otherwise the client gets ``408 Request Timeout`` (or, if it sent nothing, just
  the close) and the connection is closed. An idle kept-alive connection is uvicorn's
  keep-alive timer's business, as before;
- **body**: once ``head_timeout`` seconds have passed since the head arrived, the body
  must have arrived at ``min_body_rate`` bytes a second on average, counting only the
  seconds we were willing to read (uvicorn pauses reading while the app has not taken
  the buffered body, and a client must not pay for our slowness). A slower client's
  connection is closed; the app sees a disconnect and drops its partial upload.

- **response**: while a response's bytes wait in our write buffer (the client, not the
  app, is the bottleneck), the client must take at least ``min_response_rate`` bytes a
  second over every stretch of ``head_timeout`` seconds; otherwise the connection is
  aborted (not closed: a close would wait for the buffer to drain, i.e. forever). The
  app's ``send`` returns, its receive reports the disconnect, and the download releases
  its file and buffers. Without this, a client that requests a large file and never
  reads holds a connection and megabytes of buffers for as long as it stays connected.
  A sliding window rather than an average since the start: a client must not be able to
  read fast for a while, then stall for as long as the early bytes "paid" for.

Rate rather than idle time is checked because an idle timeout is exactly what a trickling
client defeats. The figures follow Kestrel's defaults in spirit (a grace period, then a
floor far below any real link).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable
from typing import Any, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger("filetier.http")

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 36\r\n"
    b"Connection: close\r\n\r\n"
    b"request headers not received in time"
)
CHECK_EVERY_SECONDS = 1.0


class DeadlineProtocol(H11Protocol):
    """H11Protocol that closes connections whose head or body arrives, or whose response
    is taken, too slowly.

    The limits are class attributes: :func:`deadline_protocol` makes a subclass with the
    configured ones, since uvicorn builds one protocol instance per connection itself.
    """

    head_timeout: float = 10.0
    min_body_rate: int = 1024
    min_response_rate: int = 1024

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False  # a byte of the awaited head has arrived
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0
        self._body_seconds = 0.0
        self._socket: asyncio.Transport | None = None  # the real transport, not the counter
        self._response_timer: asyncio.TimerHandle | None = None
        self._written = 0  # bytes handed to the transport on this connection
        self._drain_mark = (0, 0)  # (written, buffered) at the last response check
        window = max(1, math.ceil(self.head_timeout / CHECK_EVERY_SECONDS))
        self._drained: collections.deque[int] = collections.deque(maxlen=window)

    # -- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._socket = transport
        # uvicorn writes responses through ``self.transport``: count what it writes.
        self.transport = cast(asyncio.Transport, _CountingTransport(transport, self._wrote))
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        state = self.conn.their_state
        if state is h11.IDLE and self._head_timer is None:
            self._arm_head_timer()  # the first byte of a kept-alive connection's next head
        if state is h11.IDLE:
            self._head_started = True
        waiting_for_body = state is h11.SEND_BODY
        super().data_received(data)
        if waiting_for_body:
            self._body_bytes += len(data)
        self._after_events()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._after_events()  # a pipelined request may have been parsed just now

    # -- the deadlines --------------------------------------------------------------------

    def _after_events(self) -> None:
        state = self.conn.their_state
        if state is not h11.IDLE and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if state is h11.SEND_BODY and self._body_timer is None:
            self._body_bytes = 0
            self._body_seconds = 0.0
            self._body_timer = self.loop.call_later(CHECK_EVERY_SECONDS, self._check_body_rate)
        elif state is not h11.SEND_BODY and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_started = False
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_started:
            log.warning(
                "closed a connection from %s: request head not received in time", _peer(self)
            )
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()

    def _check_body_rate(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        if not self.flow.read_paused:
            self._body_seconds += CHECK_EVERY_SECONDS
        if (
            self._body_seconds >= self.head_timeout
            and self._body_bytes < self.min_body_rate * self._body_seconds
        ):
            log.warning(
                "closed a connection from %s: request body at %d bytes in %.0f s, "
                "under the minimum of %d bytes/s",
                _peer(self),
                self._body_bytes,
                self._body_seconds,
                self.min_body_rate,
            )
            self.transport.close()
            return
        self._body_timer = self.loop.call_later(CHECK_EVERY_SECONDS, self._check_body_rate)

    def _buffered(self) -> int:
        return self._socket.get_write_buffer_size() if self._socket is not None else 0

    def _wrote(self, size: int) -> None:
        self._written += size
        if self._response_timer is None and self._buffered() > 0:
            # The kernel took less than we wrote: from now on the client sets the pace.
            self._drain_mark = (self._written, self._buffered())
            self._drained.clear()
            self._response_timer = self.loop.call_later(
                CHECK_EVERY_SECONDS, self._check_response_rate
            )

    def _check_response_rate(self) -> None:
        self._response_timer = None
        if self._socket is None:
            return
        buffered = self._buffered()
        if buffered == 0:
            return  # the client caught up; the next write that is held back re-arms
        written, before = self._drain_mark
        self._drained.append((self._written - written) - (buffered - before))
        self._drain_mark = (self._written, buffered)
        window = self._drained.maxlen or 1
        taken = sum(self._drained)
        if len(self._drained) == window and taken < self.min_response_rate * window:
            log.warning(
                "closed a connection from %s: response read at %d bytes in %.0f s, "
                "under the minimum of %d bytes/s",
                _peer(self),
                taken,
                window * CHECK_EVERY_SECONDS,
                self.min_response_rate,
            )
            self._socket.abort()  # close() would wait for the client to drain the buffer
            return
        self._response_timer = self.loop.call_later(CHECK_EVERY_SECONDS, self._check_response_rate)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._response_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._response_timer = None


class _CountingTransport:
    """A transport that reports the size of each write, and is otherwise the transport."""

    def __init__(self, transport: asyncio.Transport, wrote: Callable[[int], None]) -> None:
        self._transport = transport
        self._wrote = wrote

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)
        self._wrote(len(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _peer(protocol: H11Protocol) -> str:
    client = protocol.client
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


def deadline_protocol(
    *, head_timeout: float, min_body_rate: int, min_response_rate: int = 1024
) -> type[DeadlineProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    limits = {
        "head_timeout": head_timeout,
        "min_body_rate": min_body_rate,
        "min_response_rate": min_response_rate,
    }
    return type("ConfiguredDeadlineProtocol", (DeadlineProtocol,), limits)


__all__ = ["DeadlineProtocol", "deadline_protocol"]
