"""Latency of one MCP tool call: ``file_info`` over streamable HTTP, with baselines.

Run::

    .venv/bin/python bench/bench_mcp.py            # N=200 calls per row
    .venv/bin/python bench/bench_mcp.py -n 1000

Each HTTP row starts a server in its own process (uvicorn on 127.0.0.1, the embedded
default store in a temporary directory) and times ``N`` sequential ``file_info`` calls
from the SDK's client after a warm-up, each with ``perf_counter_ns``. Baselines measured
in the same run:

- ``store.stat()`` in-process: what ``file_info`` does, without MCP (one SQLite read);
- the SDK's in-process client: MCP framing and validation, no HTTP.

Rows "behind filetier's HTTP API" go through ``filetier serve``'s app (bearer token,
Host check, metrics); the "bare" rows put the MCP app behind a one-line owner middleware.
The table is markdown; ratios are against ``store.stat()``. Exit code is always 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - throwaway, loopback-only server
OWNER = "bench"
WARMUP = 20

# Variables that would point Settings at a developer's real store.
_ENV_PREFIXES = ("FILETIER_", "SUPABASE_")
_ENV_NAMES = ("DATABASE_URL", "FILE_CACHE_DIR", "MAX_MEMORY_CACHE_SIZE", "MAX_CACHE_SIZE_MB")


def settings_for(home: Path) -> Any:
    from filetier import Settings

    return Settings(
        home=home,
        fsync=False,
        allowed_roots=str(home / "roots"),
        api_tokens=f"{OWNER}:{TOKEN}",
        owner=OWNER,
    )


# -- the server process -----------------------------------------------------------------


def serve(app_kind: str, home: Path, port: int) -> None:
    """Child process: serve one app until killed."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send

    from filetier import FileStore
    from filetier.interfaces.mcp import mcp_http_app

    settings = settings_for(home)
    app: Any
    if app_kind == "full":
        from filetier.interfaces.app import build_app

        app = build_app(settings, bind_host="127.0.0.1", bind_port=port)
    else:
        store = FileStore(settings)
        mcp = mcp_http_app(settings, store)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async with store, mcp.lifespan():
                yield

        class Owner:
            def __init__(self, inner: ASGIApp) -> None:
                self.inner = inner

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http":
                    scope.setdefault("state", {})["filetier_owner"] = OWNER
                await self.inner(scope, receive, send)

        app = Starlette(routes=[Route("/mcp", endpoint=mcp)], lifespan=lifespan)
        app.add_middleware(Owner)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server_process(app_kind: str, home: Path) -> Any:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", app_kind, "--home", str(home), "--port", str(port)]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {app_kind} server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        child.terminate()
        child.wait(10)


# -- timing ----------------------------------------------------------------------------------


async def timed(n: int, once: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(WARMUP):
        await once()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        await once()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


def file_info_call(client: Any, file_id: str) -> Callable[[], Awaitable[object]]:
    async def once() -> None:
        result = await client.call_tool("file_info", {"file_id": file_id})
        if result.is_error:
            raise RuntimeError(result.content)

    return once


async def over_http(url: str, file_id: str, n: int, mode: str) -> list[float]:
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        return await timed(n, file_info_call(client, file_id))


async def prepare(home: Path) -> str:
    from filetier import FileStore

    (home / "roots").mkdir(parents=True, exist_ok=True)
    async with FileStore(settings_for(home)) as store:
        uploaded = await store.upload_file(b"benchmark file\n", filename="bench.txt")
    return str(uploaded.file_id)


async def baselines(home: Path, file_id: str, n: int) -> dict[str, list[float]]:
    from mcp.client import Client

    from filetier import FileStore
    from filetier.interfaces.mcp import build_server

    rows: dict[str, list[float]] = {}
    async with FileStore(settings_for(home)) as store:
        rows["store.stat() in-process (baseline)"] = await timed(n, lambda: store.stat(file_id))
        async with Client(build_server(store.settings, store=store)) as client:
            rows["MCP, SDK in-process client"] = await timed(n, file_info_call(client, file_id))
    return rows


def table(rows: dict[str, list[float]]) -> str:
    base = statistics.median(next(iter(rows.values())))
    lines = [
        "| file_info via | median ms | p95 ms | ratio to store.stat |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in rows.items():
        ordered = sorted(samples)
        median = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        lines.append(f"| {name} | {median:.3f} | {p95:.3f} | {median / base:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="timed calls per row")
    parser.add_argument("--serve", choices=["bare", "full"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.home, args.port)
        return
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            del os.environ[name]
    os.chdir(tempfile.gettempdir())  # no .env from the caller's directory

    with tempfile.TemporaryDirectory(prefix="filetier-bench-mcp-") as work:
        home = Path(work) / "home"
        file_id = asyncio.run(prepare(home))
        rows = asyncio.run(baselines(home, file_id, args.n))
        for kind, label in (("bare", "bare MCP app"), ("full", "behind filetier's HTTP API")):
            with server_process(kind, home) as url:
                for mode, protocol in (("auto", "2026-07-28"), ("legacy", "2025-11-25 session")):
                    name = f"MCP streamable HTTP, {label}, {protocol}"
                    rows[name] = asyncio.run(over_http(url, file_id, args.n, mode))
    print(
        f"N={args.n} sequential calls per row after {WARMUP} warm-up calls; Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    print(table(rows))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation (obstore's runtime may abort it)


if __name__ == "__main__":
    main()
