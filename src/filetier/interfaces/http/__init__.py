"""The HTTP API (and MCP over HTTP at /mcp) of filetier: see :func:`build_app`."""

from filetier.interfaces.http.app import build_app

__all__ = ["build_app"]
