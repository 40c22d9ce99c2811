"""Tool listings small enough for a model's context: ``tools/list`` stays under 8 KiB.

Every listed tool costs the client's model context on every turn, so the schemas the SDK
derives from pydantic are compacted before they are sent: no ``title`` (the property name
says it), ``X | None`` as a type list instead of an ``anyOf``, no ``default: null``, no
docstring indentation. The
output schema is reduced to ``{"type": "object"}``: a result's shape is in its structured
content, and the full schema would be two thirds of the listing for no gain to the model.
"""

from __future__ import annotations

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
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out = {**other, **out, "type": [other["type"], "null"]}
    return out


def compact_tool(tool: Tool) -> Tool:
    return tool.model_copy(
        update={
            # Docstring indentation is whitespace the model would read on every turn.
            "description": " ".join(tool.description.split()) if tool.description else None,
            "input_schema": compact_schema(tool.input_schema),
            "output_schema": OUTPUT_SCHEMA if tool.output_schema is not None else None,
        }
    )
