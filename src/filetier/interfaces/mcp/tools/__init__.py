"""The MCP tools: parse the arguments, call the caller's view of the store, shape the result.

Each tool's docstring is its description for the model; :data:`TOOLS` adds the title and
the behaviour hints clients use to decide what needs a confirmation. Domain errors are
not handled here: the server turns every :class:`~filetier.errors.FiletierError` into a
tool error with its message (see ``server.py``), so a tool reads as the happy path.

One module per group of tools (transfer, files, links, maintenance, providers; ``common``
holds the shared argument types); this module lists them in :data:`TOOLS` and registers
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from filetier.config import Settings
from filetier.interfaces.mcp.context import AppState
from filetier.interfaces.mcp.tools.files import delete_file, file_info, list_files
from filetier.interfaces.mcp.tools.links import create_link, revoke_links
from filetier.interfaces.mcp.tools.maintenance import cache_stats, cleanup_cache, verify_file
from filetier.interfaces.mcp.tools.providers import ask_file, get_file_text, get_provider_file_id
from filetier.interfaces.mcp.tools.transfer import download_file, upload_file
from filetier.providers.registry import configured_names

# -- registration --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    fn: Callable[..., Any]
    title: str
    annotations: ToolAnnotations


def _hints(
    *, read_only: bool, destructive: bool = False, idempotent: bool, open_world: bool = False
) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(upload_file, "Upload a file", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        download_file,
        "Download a file to disk",
        # Writes into the allowed roots; replaces a different file there only when the
        # caller sets overwrite, which is still a destructive possibility to confirm.
        _hints(read_only=False, destructive=True, idempotent=True),
    ),
    ToolSpec(
        get_provider_file_id,
        "Get a provider file id",
        _hints(read_only=False, idempotent=True, open_world=True),
    ),
    ToolSpec(file_info, "File metadata", _hints(read_only=True, idempotent=True)),
    ToolSpec(list_files, "List files", _hints(read_only=True, idempotent=True)),
    ToolSpec(
        delete_file,
        "Delete a file",
        # A second call for the same id is an error ("no file with id"): not idempotent.
        _hints(read_only=False, destructive=True, idempotent=False),
    ),
    ToolSpec(create_link, "Create a download link", _hints(read_only=False, idempotent=False)),
    ToolSpec(
        revoke_links,
        "Revoke download links",
        # A second revocation of the same link is an error: not idempotent.
        _hints(read_only=False, destructive=True, idempotent=False),
    ),
    ToolSpec(
        verify_file,
        "Verify file integrity",
        # Not read-only: a corrupt copy it finds is dropped (cache) or set aside (primary).
        _hints(read_only=False, idempotent=True),
    ),
    ToolSpec(
        cleanup_cache,
        "Clean up caches",
        _hints(read_only=False, destructive=True, idempotent=True),
    ),
    ToolSpec(cache_stats, "Cache statistics", _hints(read_only=True, idempotent=True)),
    ToolSpec(
        get_file_text,
        "Get a file's extracted text",
        # May upload the file to the provider on first use; repeats are served from cache.
        _hints(read_only=False, idempotent=True, open_world=True),
    ),
    ToolSpec(
        ask_file,
        "Ask a provider about files",
        _hints(read_only=False, idempotent=False, open_world=True),
    ),
)


# Tools only the operator can use (verify_file is listed for all: it checks one file).
OPERATOR_TOOLS = frozenset({"cleanup_cache"})
PROVIDER_TOOLS = frozenset({"get_provider_file_id", "get_file_text", "ask_file"})
NO_PROVIDER_MESSAGE = (
    "{name} needs an LLM provider, and this server has none configured: set one of "
    "KIMI_API_KEY, GLM_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, ANTHROPIC_API_KEY or "
    "MISTRAL_API_KEY on the server"
)


def register_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Register the tools that can work here: provider tools only with a provider."""
    with_providers = bool(configured_names(settings))
    for spec in TOOLS:
        if spec.fn.__name__ in PROVIDER_TOOLS and not with_providers:
            continue
        server.add_tool(
            spec.fn,
            title=spec.title,
            annotations=spec.annotations,
            structured_output=True,
        )
