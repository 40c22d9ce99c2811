"""Server commands: ``serve`` (HTTP API and MCP on one port) and ``mcp`` (stdio)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from filetier.errors import ConfigError
from filetier.interfaces.cli.context import build_server_settings
from filetier.interfaces.cli.output import notice

if TYPE_CHECKING:
    from filetier.config import Settings


NO_TOKEN_MESSAGE = (
    "no API token: on this machine only, run `filetier serve --no-auth` (loopback); "  # noqa: S105 - advice, not a token
    "otherwise create one with `filetier token create NAME` (it sees owner NAME's files) "
    "or set FILETIER_API_TOKENS=NAME:TOKEN"
)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (default FILETIER_HTTP_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default FILETIER_HTTP_PORT, 8787).")
    ] = None,
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve MCP over stdio instead.")] = False,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve without tokens (refused unless bound to loopback)."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Startup notes and errors as JSON lines on stderr.")
    ] = False,
) -> None:
    """Serve the HTTP API and MCP (streamable HTTP at /mcp) on one port."""
    settings = build_server_settings(allow_no_auth=True) if no_auth else build_server_settings()
    if stdio:
        _serve_stdio(settings, as_json)
        return
    from filetier.interfaces.http.runtime import AUTH_REQUIRED_MESSAGE
    from filetier.interfaces.serve import run as run_server

    bind_host, bind_port = host or settings.http_host, port or settings.http_port
    _data_notice(settings, as_json)
    if no_auth:
        notice(
            f"no tokens (--no-auth): every request acts as owner {settings.owner!r}",
            as_json,
            owner=settings.owner,
        )
    try:
        run_server(settings, bind_host, bind_port)
    except ConfigError as exc:
        if str(exc) == AUTH_REQUIRED_MESSAGE:
            raise ConfigError(NO_TOKEN_MESSAGE) from None
        raise


def _data_notice(settings: Settings, as_json: bool) -> None:
    """Where the files and their records live, said once at startup."""
    view = settings.public_view()
    notice(
        f"data in {settings.home} (database {view['database_url']}; objects {view['primary_url']})",
        as_json,
        home=str(settings.home),
        database_url=view["database_url"],
        primary=view["primary_url"],
    )


def _serve_stdio(settings: Settings, as_json: bool) -> None:
    from filetier.interfaces.mcp.server import run_stdio

    if sys.stdin.isatty():
        # Launched by hand: without this it would sit silent, waiting for JSON-RPC.
        notice(
            "filetier mcp: waiting for an MCP client on stdin (MCP clients start this "
            "command themselves; Ctrl-D or Ctrl-C to stop)",
            as_json,
        )
        _data_notice(settings, as_json)
    run_stdio(settings)


def mcp(
    as_json: Annotated[
        bool, typer.Option("--json", help="Notes and errors as JSON lines on stderr.")
    ] = False,
) -> None:
    """Serve MCP over stdio, for clients that launch their servers (logs go to stderr)."""
    _serve_stdio(build_server_settings(), as_json)
