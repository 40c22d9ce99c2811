"""``filetier serve``: the HTTP API and MCP over HTTP on one port, under uvicorn.

:func:`run` blocks until the server stops (SIGINT/SIGTERM). On a signal uvicorn stops
accepting connections and lets in-flight requests finish for ``graceful_shutdown_seconds``;
transfers still running then are cancelled, which aborts their connections (the client
sees a short body, never a complete-looking wrong one) and removes partial uploads. The
store is closed last, writing the batched bookkeeping. Every log line goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import logging.handlers
import queue
import signal
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from filetier.config import Settings
from filetier.interfaces.app import build_app as _build_http_app
from filetier.interfaces.http.access import is_loopback
from filetier.interfaces.http.deadlines import deadline_protocol
from filetier.interfaces.http.runtime import AUTH_REQUIRED_MESSAGE, Runtime

GRACEFUL_SHUTDOWN_SECONDS = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger("filetier.http")


def build_app(settings: Settings) -> Starlette:
    """The ASGI app ``run`` serves (bound address taken from the settings)."""
    return _build_http_app(settings)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the access log moved from stdout to stderr, plus filetier's
    and the root logger's (the MCP SDK's warnings), every handler escaping control
    characters so that no request path or file name can forge a log line."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["filters"] = {"escape_controls": {"()": "filetier.logsafe.EscapeControls"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["escape_controls"]
    config["loggers"]["filetier"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config


class _HandOff(logging.handlers.QueueHandler):
    """Hands a record to the writing thread as it is: uvicorn's access formatter reads
    the record's ``args``, which ``QueueHandler.prepare`` would have merged away."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


@contextlib.contextmanager
def _access_log_off_the_loop() -> Iterator[None]:
    """The access log's lines written by a thread of their own, in order.

    One line per request written on the event loop was a blocking write to stderr per
    request, and each gave the GIL away to whatever worker thread wanted it (up to a
    switch interval before the loop got it back). Records are formatted and filtered
    (control characters escaped) by the same handlers as before, in the listener.
    """
    logger = logging.getLogger("uvicorn.access")
    handlers = list(logger.handlers)
    if not handlers:
        yield
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    for handler in handlers:
        logger.removeHandler(handler)
    hand_off = _HandOff(records)
    logger.addHandler(hand_off)
    listener.start()
    try:
        yield
    finally:
        logger.removeHandler(hand_off)
        listener.stop()  # writes whatever is queued
        for handler in handlers:
            logger.addHandler(handler)


async def _has_stored_tokens(settings: Settings) -> bool:
    from filetier.store import FileStore
    from filetier.tokens import TokenAuthority

    async with FileStore(settings) as store:
        return bool(await TokenAuthority(settings, store.db).list())


def check_can_serve(settings: Settings, host: str) -> None:
    """Refuse to start without tokens, unless allowed and on loopback (ConfigError)."""
    from filetier.errors import ConfigError

    if settings.token_owners or (settings.allow_no_auth and is_loopback(host)):
        return
    if asyncio.run(_has_stored_tokens(settings)):
        return
    if settings.allow_no_auth:
        raise ConfigError(
            f"FILETIER_ALLOW_NO_AUTH is honoured only on a loopback address, not on {host}: "
            "configure API tokens (FILETIER_API_TOKENS)"
        )
    raise ConfigError(AUTH_REQUIRED_MESSAGE)


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after it has shut down: ``run``
    returns normally after SIGTERM or SIGINT, and its caller decides what comes next."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals can only be handled on the main thread
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run(
    settings: Settings,
    host: str,
    port: int,
    *,
    graceful_shutdown_seconds: int = GRACEFUL_SHUTDOWN_SECONDS,
) -> None:
    """Serve until stopped. Raises ConfigError when the server cannot start."""
    check_can_serve(settings, host)
    app = _build_http_app(settings, bind_host=host, bind_port=port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=log_config(),
        timeout_graceful_shutdown=graceful_shutdown_seconds,
        proxy_headers=False,
        server_header=False,
        http=deadline_protocol(
            head_timeout=settings.http_head_timeout_seconds,
            min_body_rate=settings.http_min_body_rate,
            min_response_rate=settings.http_min_response_rate,
        ),
        # Every connection may hold a response's buffers until the deadlines above end
        # it: their number is what bounds the memory slow clients can pin.
        limit_concurrency=settings.http_max_connections,
    )
    server = _Server(config)
    with _access_log_off_the_loop():
        server.run()
    runtime: Runtime = app.state.runtime
    if runtime.startup_error is not None:
        raise runtime.startup_error


__all__ = ["build_app", "check_can_serve", "log_config", "run"]
