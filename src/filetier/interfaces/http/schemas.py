"""The OpenAPI components of the HTTP API: the response bodies that are pydantic models
(files, pages, uploads, provider ids) generated from those models; request bodies, errors
and links, which are not models, written here with the patterns the routes enforce.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from filetier.models import FilePage, ProviderCopyInfo, ProviderFileId, UploadResult

JSON = "application/json"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
NO_NUL = r"^[^\u0000]*$"
# Python's str.strip() whitespace, spelled out: ECMA's \s differs (\x1c-\x1f, U+FEFF).
_SPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A file name: no control characters (C0, DEL, C1) or line separators, not blank.
_CONTROL = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
NAME = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
NOT_BLANK = rf"[^{_SPACE}]"
SHA256 = r"^[0-9a-fA-F]{64}$"
MIME = r"^[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}/[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


LINK_SCHEMAS: dict[str, Any] = {
    "LinkRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "expires_in": {
                "type": "integer",
                "minimum": 1,
                "description": "Lifetime in seconds, at most FILETIER_LINK_MAX_SECONDS "
                "(default 3600).",
            },
            "single_use": {"type": "boolean", "default": False},
            "range": {
                "type": "string",
                "description": "Serve only these bytes, e.g. bytes=0-1023.",
            },
            "direct": {
                "type": "boolean",
                "default": False,
                "description": "A pre-signed object-store URL (S3-compatible primary): not "
                "revocable, no download history.",
            },
        },
    },
    "Link": {
        "type": "object",
        "required": ["url", "direct", "file_id", "expires_at", "revocable"],
        "properties": {
            "url": {"type": "string", "description": "Serves the file without a token."},
            "link_id": {"type": "string"},
            "direct": {"type": "boolean"},
            "file_id": {"type": "string", "format": "uuid"},
            "expires_at": {"type": "string", "format": "date-time"},
            "single_use": {"type": "boolean"},
            "range": {"type": ["string", "null"]},
            "revocable": {"type": "boolean"},
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string", "description": "The error class name."},
                    "message": {"type": "string"},
                },
            }
        },
    },
    # User metadata: any JSON object whose strings and keys hold no NUL (JSONB cannot).
    "MetadataValue": {
        "anyOf": [
            {"type": "string", "pattern": NO_NUL},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": "#/components/schemas/MetadataValue"}},
            {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL},
                "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
            },
        ]
    },
    "Metadata": {
        "type": "object",
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": {"$ref": "#/components/schemas/MetadataValue"},
    },
    "HashFirstUpload": {
        "type": "object",
        "additionalProperties": False,
        "required": ["sha256", "size", "filename"],
        "properties": {
            "sha256": {"type": "string", "pattern": SHA256},
            "size": {"type": "integer", "minimum": 0},
            "filename": {"type": "string", "pattern": NAME, "maxLength": 1024},
            "mime_type": {"type": "string", "pattern": MIME},
            "metadata": {"$ref": "#/components/schemas/Metadata"},
        },
    },
    "ProviderIdRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["provider"],
        "properties": {
            "provider": {"type": "string", "pattern": NOT_BLANK, "maxLength": 64},
            "purpose": {"type": "string", "pattern": NOT_BLANK, "maxLength": 64},
            "verify": {"type": "boolean"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
    },
}


def model_schemas() -> dict[str, Any]:
    """The response bodies that are pydantic models, generated from those models (as
    serialized: ``model_dump(mode="json")``), so the document cannot drift from them."""
    _, top = models_json_schema(
        [(model, "serialization") for model in (FilePage, UploadResult, ProviderFileId)]
        + [(ProviderCopyInfo, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    record = schemas["FileRecord"]
    # The HTTP API never shows where the object lies (routes drop it), and
    # adds the provider copies on GET /v1/files/{id}.
    del record["properties"]["storage_key"]
    record["required"].remove("storage_key")
    record["properties"]["provider_copies"] = {
        "type": "array",
        "description": "Provider copies of the content and the life each has left "
        "(GET /v1/files/{id} only)",
        "items": ref("ProviderCopyInfo"),
    }
    return schemas


def component_schemas() -> dict[str, Any]:
    return {**model_schemas(), **SCHEMAS, **LINK_SCHEMAS}
