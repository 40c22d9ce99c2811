"""Thin interfaces over FileStore: CLI now; MCP and HTTP build on the same store."""
