"""Deadlines for slow clients: uvicorn's HTTP/1.1 protocol with a head timeout and a
minimum body rate.

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

Rate rather than idle time is checked because an idle timeout is exactly what a trickling
client defeats. The figures follow Kestrel's defaults in spirit (a grace period, then a
floor far below any real link).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

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
    """H11Protocol that closes connections whose head or body arrives too slowly.

    The limits are class attributes: :func:`deadline_protocol` makes a subclass with the
    configured ones, since uvicorn builds one protocol instance per connection itself.
    """

    head_timeout: float = 10.0
    min_body_rate: int = 1024

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

    # -- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
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

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


def _peer(protocol: H11Protocol) -> str:
    client = protocol.client
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


def deadline_protocol(*, head_timeout: float, min_body_rate: int) -> type[DeadlineProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    limits = {"head_timeout": head_timeout, "min_body_rate": min_body_rate}
    return type("ConfiguredDeadlineProtocol", (DeadlineProtocol,), limits)


__all__ = ["DeadlineProtocol", "deadline_protocol"]
