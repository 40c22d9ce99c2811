"""What every tool module shares: the context type and the annotated argument types."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from filetier.interfaces.mcp.context import AppState
from filetier.providers.registry import SPECS

Ctx = Context[AppState, Any]

_PROVIDERS = ", ".join(SPECS)
FileId = Annotated[str, Field(description="File id")]
# Listed as an enum of the providers configured (schemas.py), so the model cannot pick one
# that would only fail.
Provider = Annotated[str, Field(description=f"LLM provider: one of {_PROVIDERS}")]
