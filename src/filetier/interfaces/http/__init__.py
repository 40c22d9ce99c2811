"""The HTTP API of filetier: the /v1 endpoints, links, access, metrics and content serving.

The app that puts them together with the web console and MCP at /mcp is
:func:`filetier.interfaces.app.build_app`, one layer above this package.
"""
