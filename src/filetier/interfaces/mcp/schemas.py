"""Tool listings small enough for a model's context: ``tools/list`` stays under 8 KiB.

Every listed tool costs the client's model context on every turn, so the schemas the SDK
derives from pydantic are compacted before they are sent: no ``title`` (the property name
says it), an optional ``X | None`` as plain ``X`` (leaving it out is how a caller says
null; an explicit null is still accepted), no ``default: null``, no
``additionalProperties: true`` (JSON Schema's default), no docstring indentation, and a
``provider`` argument as the enum of the providers this server has keys for. The
output schema is reduced to ``{"type": "object"}``: a result's shape is in its structured
content, and the full schema would be two thirds of the listing for no gain to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.types import Tool

OUTPUT_SCHEMA: dict[str, Any] = {"type": "object"}


def compact_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [compact_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: compact_schema(v) for k, v in node.items() if k != "title"}
    if out.get("default", ...) is None:
        del out["default"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out = {**other, **out}
    return out


def compact_tool(tool: Tool, providers: Sequence[str] = ()) -> Tool:
    """``providers``: the names a ``provider`` argument may take here."""
    schema = compact_schema(tool.input_schema)
    provider = schema.get("properties", {}).get("provider")
    if provider is not None and providers:
        schema["properties"]["provider"] = {"type": "string", "enum": list(providers)}
    return tool.model_copy(
        update={
            # Docstring indentation is whitespace the model would read on every turn.
            "description": " ".join(tool.description.split()) if tool.description else None,
            "input_schema": schema,
            "output_schema": OUTPUT_SCHEMA if tool.output_schema is not None else None,
        }
    )
