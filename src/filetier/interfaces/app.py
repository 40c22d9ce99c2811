"""``build_app(settings)``: the HTTP API and MCP over HTTP, as one Starlette app.

Request path, outermost first::

    ServerErrorMiddleware      unexpected exception -> bare JSON 500 (traceback to the log)
    MetricsMiddleware          counts requests, bytes and latency by route template
    AccessGate                 Host check (421), bearer token (401), owner into the scope;
                               /metrics only for the metrics or an operator's token;
                               /mcp is handed to the MCP app here
    ExceptionMiddleware        FiletierError -> {"error": {...}} with its mapped status
    Router                     /healthz /readyz /metrics /openapi.json and /v1/...;
                               /links/{token} (download links: no token, the link is);
                               the web console's pages at / (filetier.interfaces.web)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from filetier import __version__
from filetier.config import Settings
from filetier.errors import FiletierError
from filetier.interfaces.http import links, routes
from filetier.interfaces.http.access import AccessGate, HostPolicy
from filetier.interfaces.http.errors import on_filetier_error, on_http_exception, on_unexpected
from filetier.interfaces.http.metrics import CONTENT_TYPE, MetricsMiddleware
from filetier.interfaces.http.openapi import openapi_document
from filetier.interfaces.http.runtime import Runtime
from filetier.interfaces.web.app import console_routes

READY_TIMEOUT_SECONDS = 5.0
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
READY_PROBE_KEY = "filetier-readyz-probe"

log = logging.getLogger("filetier.http")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


NOT_READY = {"status": "not ready"}


async def readyz(request: Request) -> Response:
    """Ready or not, and nothing more: the probe needs no token and answers any Host, so
    why it is not ready (which service, which error) goes to the server's log only."""
    runtime: Runtime = request.app.state.runtime
    store = runtime.store
    if store is None:
        log.warning("not ready: starting or stopping")
        return JSONResponse(NOT_READY, 503)
    checks: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("database", lambda: store.repo.owner_usage(READY_PROBE_KEY)),
        ("primary store", lambda: store.primary.head(READY_PROBE_KEY)),
    )
    for name, check in checks:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await check()
        except TimeoutError:
            reason = f"{name}: no answer within {READY_TIMEOUT_SECONDS:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with why
            text = str(exc) if isinstance(exc, FiletierError) else type(exc).__name__
            reason = f"{name}: {runtime.redact(text)}"
        else:
            continue
        log.warning("not ready: %s", reason)
        return JSONResponse(NOT_READY, 503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    stats = await runtime.store.stats() if runtime.store is not None else None
    return PlainTextResponse(
        runtime.metrics.render(stats, (runtime.verified.hashed, runtime.verified.trusted)),
        media_type=CONTENT_TYPE,
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(**handlers: Endpoint) -> Endpoint:
    """One route, one handler per method (so a 405 lists every allowed method)."""

    allowed = ", ".join(sorted({*handlers, *(["HEAD"] if "GET" in handlers else [])}))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            raise HTTPException(405, "Method Not Allowed", headers={"Allow": allowed})
        return await handler(request)

    return dispatch


def build_app(
    settings: Settings, *, bind_host: str | None = None, bind_port: int | None = None
) -> Starlette:
    """The server app. ``bind_host``/``bind_port`` (default: the settings') are the address
    it listens on: accepted as a Host header, and checked for loopback without tokens."""
    runtime = Runtime(
        settings,
        bind_host if bind_host is not None else settings.http_host,
        bind_port if bind_port is not None else settings.http_port,
    )
    runtime.mount_mcp()
    hosts = HostPolicy(settings.allowed_hosts, runtime.bind_host, runtime.bind_port)
    app_routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route(
            "/v1/files",
            by_method(GET=routes.list_files, POST=routes.upload_file),
            methods=["GET", "POST"],
        ),
        # Every method, so that GET /v1/files/by-hash is a 405 here rather than a lookup
        # of a file named "by-hash" by the next route.
        Route("/v1/files/by-hash", by_method(POST=routes.upload_by_hash), methods=ALL_METHODS),
        Route(
            "/v1/files/{file_id}",
            by_method(GET=routes.get_file, DELETE=routes.delete_file),
            methods=["GET", "DELETE"],
        ),
        Route("/v1/files/{file_id}/content", routes.file_content, methods=["GET", "HEAD"]),
        Route("/v1/files/{file_id}/provider-id", routes.provider_file_id, methods=["POST"]),
        Route(
            "/v1/files/{file_id}/links",
            by_method(POST=links.create_link, DELETE=links.revoke_file_links),
            methods=["POST", "DELETE"],
        ),
        Route("/v1/links", links.revoke_all_links, methods=["DELETE"]),
        Route("/v1/links/{link_id}", links.revoke_link, methods=["DELETE"]),
        # No token: the signed link is the credential (filetier.links).
        Route("/links/{token}", links.link_content, methods=["GET", "HEAD"]),
        *console_routes(runtime),
    ]
    app = Starlette(
        routes=app_routes,
        middleware=[
            Middleware(MetricsMiddleware, metrics=runtime.metrics, routes=app_routes),
            Middleware(
                AccessGate,
                hosts=hosts,
                owner_for=runtime.owner_for,
                mcp_app=lambda: runtime.mcp_app,
                metrics_access=runtime.metrics_access,
            ),
        ],
        exception_handlers={
            FiletierError: on_filetier_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        lifespan=runtime.lifespan,
    )
    app.state.runtime = runtime
    app.state.redact = runtime.redact
    app.state.openapi = openapi_document(__version__)
    return app
