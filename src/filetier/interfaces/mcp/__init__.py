"""filetier as an MCP server (official ``mcp`` SDK 2.x), over stdio and streamable HTTP.

::

    context.py    AppState (the lifespan state) and who the caller is: the owner per request
    tools/        the tools (one module per group), their descriptions and behaviour hints
    results.py    the tools' structured results (output schemas)
    resources.py  the resource template filetier://files/{file_id}
    progress.py   byte counts from the store -> progress notifications, across threads
    changes.py    resources/list_changed, sent to each owner's own sessions only
    server.py     build_server(), the error boundary, mcp_http_app(), run_stdio()
"""

from filetier.interfaces.mcp.server import (
    AppState,
    McpHttpApp,
    build_server,
    mcp_http_app,
    run_stdio,
)

__all__ = ["AppState", "McpHttpApp", "build_server", "mcp_http_app", "run_stdio"]
