"""The OpenAPI 3.1 document of the HTTP API: its paths, written by hand next to the
routes; the components come from :mod:`filetier.interfaces.http.schemas`.

It is checked against the running server by ``tests/test_http_schemathesis.py``: every
status code, header and body a route can answer must be listed here.
"""

from __future__ import annotations

from typing import Any

from filetier.catalog import LIST_OFFSET_MAX
from filetier.interfaces.http.schemas import (
    JSON,
    MIME,
    NAME,
    NO_NUL,
    UUID_PATTERN,
    component_schemas,
    ref,
)

OFFSET_MAX = LIST_OFFSET_MAX


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": "#/components/responses/Error", "description": description}


def _errors(*codes: int) -> dict[str, Any]:
    described = {
        400: "Malformed input (file id, query, body, metadata).",
        401: "Missing or unknown bearer token.",
        404: "No such file for this owner (other owners' files are never visible).",
        409: "Only an extracted text of this file exists.",
        413: "Over the size limit or the owner's quota.",
        421: "The Host header does not name this server (DNS-rebinding protection).",
        415: "The content type is not accepted by this store.",
        422: "Another configured limit refused the request.",
        429: "The provider kept rate-limiting.",
        503: "The store is busy or a backend is unavailable.",
        507: "Not enough free disk space.",
    }
    return {str(code): _error(described[code]) for code in codes}


FILE_ID = {
    "name": "file_id",
    "in": "path",
    "required": True,
    "description": "The file id (a UUID).",
    "schema": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
}

CONTENT_HEADERS: dict[str, Any] = {
    "ETag": {"description": 'Strong validator: "<sha256>".', "schema": {"type": "string"}},
    "Repr-Digest": {"description": "sha-256=:<base64>: (RFC 9530).", "schema": {"type": "string"}},
    "Accept-Ranges": {"schema": {"type": "string", "enum": ["bytes"]}},
    "Content-Disposition": {
        "description": "attachment; filename=...; filename*=UTF-8''... (RFC 6266).",
        "schema": {"type": "string"},
    },
    "Content-Length": {"schema": {"type": "integer", "minimum": 0}},
}

LINK_ID = {
    "name": "link_id",
    "in": "path",
    "required": True,
    "description": "A link id, as minting answered it (32 hex digits).",
    "schema": {"type": "string", "pattern": UUID_PATTERN},
}

_REVOKED = _json(
    {
        "type": "object",
        "required": ["revoked"],
        "properties": {"revoked": {"type": "integer", "minimum": 0}},
    },
    "How many live links were revoked.",
)


def _content_get(head: bool) -> dict[str, Any]:
    body = (
        {}
        if head
        else {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        }
    )
    parameters: list[dict[str, Any]] = [FILE_ID]
    parameters.append(
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "304 when it names the current ETag (or is *).",
            "schema": {"type": "string"},
        }
    )
    responses: dict[str, Any] = {
        "200": {"description": "The whole file.", "headers": CONTENT_HEADERS, **body},
        "304": {
            "description": "Not modified (If-None-Match matched).",
            "headers": {"ETag": CONTENT_HEADERS["ETag"]},
        },
    }
    if not head:
        parameters += [
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "description": "One byte range: bytes=first-last, bytes=first- or bytes=-suffix.",
                "schema": {"type": "string"},
            },
            {
                "name": "If-Range",
                "in": "header",
                "required": False,
                "description": "Range applies only when this equals the current ETag.",
                "schema": {"type": "string"},
            },
        ]
        responses["206"] = {
            "description": "The requested byte range.",
            "headers": {
                **CONTENT_HEADERS,
                "Content-Range": {"schema": {"type": "string"}},
            },
            **body,
        }
        responses["416"] = {
            "description": "The range starts past the end of the file.",
            "headers": {
                "Content-Range": {"description": "bytes */<size>", "schema": {"type": "string"}}
            },
            "content": {JSON: {"schema": ref("Error")}},
        }
    responses.update(_errors(400, 401, 404, 421, 503))
    return {
        "operationId": "headFileContent" if head else "getFileContent",
        "summary": "File content" + (" headers" if head else ", verified, with Range support"),
        "parameters": parameters,
        "responses": responses,
    }


def openapi_document(version: str) -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "filetier",
            "version": version,
            "description": "Content-addressed file store: upload once, download verified. "
            "Every /v1 route needs 'Authorization: Bearer <token>'; a token's owner sees "
            "only its own files.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": component_schemas(),
            "responses": {
                "Error": {
                    "description": "An error.",
                    "content": {JSON: {"schema": ref("Error")}},
                }
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "responses": {"200": _json(ref("Health"), "The process is alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the database and the primary store answer",
                    "responses": {
                        "200": _json(ref("Health"), "Ready."),
                        "503": _json(ref("Health"), "Not ready (why is in the server's log)."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (FILETIER_METRICS_TOKEN or an operator's token)",
                    "security": bearer,
                    "responses": {
                        "200": {
                            "description": "Text exposition format 0.0.4.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 421),
                    },
                }
            },
            "/v1/files": {
                "post": {
                    "operationId": "uploadFile",
                    "summary": "Upload a file: the request body is the file, streamed",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "filename",
                            "in": "query",
                            "required": False,
                            "description": "File name (else from Content-Disposition, else upload.bin).",
                            "schema": {"type": "string", "pattern": NAME, "maxLength": 1024},
                        },
                        {
                            "name": "mime_type",
                            "in": "query",
                            "required": False,
                            "description": "Declared type; the sniffed type wins unless generic.",
                            "schema": {"type": "string", "pattern": MIME},
                        },
                        {
                            "name": "X-Filetier-Metadata",
                            "in": "header",
                            "required": False,
                            "description": "User metadata: a JSON object (UTF-8).",
                            "content": {
                                JSON: {"schema": {"$ref": "#/components/schemas/Metadata"}}
                            },
                        },
                    ],
                    "requestBody": {
                        "required": False,  # no body is an empty file
                        "description": "The file's bytes (Content-Length or chunked), or a "
                        "multipart/form-data form whose file part (the part with a filename, "
                        "or named 'file') is stored with its filename and declared type.",
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                }
                            },
                        },
                    },
                    "responses": {
                        "201": {
                            **_json(ref("UploadResult"), "Stored (deduplicated when known)."),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 413, 415, 421, 422, 503, 507),
                    },
                },
                "get": {
                    "operationId": "listFiles",
                    "summary": "List this owner's files, newest first",
                    "security": bearer,
                    "parameters": [
                        {
                            "name": "name",
                            "in": "query",
                            "required": False,
                            "description": "Substring of the file name (case-insensitive).",
                            "schema": {"type": "string", "pattern": NO_NUL},
                        },
                        {
                            "name": "type",
                            "in": "query",
                            "required": False,
                            "description": "MIME type, or a family such as image/*.",
                            "schema": {"type": "string", "pattern": NO_NUL},
                        },
                        {
                            "name": "sha256",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": NO_NUL},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 1000,
                                "default": 100,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": OFFSET_MAX,
                                "default": 0,
                            },
                        },
                    ],
                    "responses": {
                        "200": _json(ref("FilePage"), "One page of files."),
                        **_errors(400, 401, 421, 503),
                    },
                },
            },
            "/v1/files/by-hash": {
                "post": {
                    "operationId": "uploadByHash",
                    "summary": "Hash-first upload: a new file record for content you already store",
                    "description": "Answers 201 (deduplicated, no body needed) when this owner "
                    "already stores content with this SHA-256 and size; otherwise 404, and "
                    "the client sends the body to POST /v1/files.",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": ref("HashFirstUpload")}},
                    },
                    "responses": {
                        "201": {
                            **_json(ref("UploadResult"), "Recorded without a transfer."),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 404, 413, 415, 421, 422, 503),
                    },
                }
            },
            "/v1/files/{file_id}": {
                "get": {
                    "operationId": "getFile",
                    "summary": "File metadata",
                    "security": bearer,
                    "parameters": [FILE_ID],
                    "responses": {
                        "200": _json(ref("FileRecord"), "The file's record."),
                        **_errors(400, 401, 404, 421, 503),
                    },
                },
                "delete": {
                    "operationId": "deleteFile",
                    "summary": "Delete the file (its bytes go when nothing else uses them)",
                    "security": bearer,
                    "parameters": [FILE_ID],
                    "responses": {
                        "204": {"description": "Deleted."},
                        **_errors(400, 401, 404, 421, 503),
                    },
                },
            },
            "/v1/files/{file_id}/content": {
                "get": {**_content_get(head=False), "security": bearer},
                "head": {**_content_get(head=True), "security": bearer},
            },
            "/v1/files/{file_id}/links": {
                "post": {
                    "operationId": "createLink",
                    "summary": "A signed, expiring download link (GET /links/{token}, no token)",
                    "security": bearer,
                    "parameters": [FILE_ID],
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": ref("LinkRequest")}},
                    },
                    "responses": {
                        "201": _json(ref("Link"), "The link."),
                        **_errors(400, 401, 404, 421, 503),
                    },
                },
                "delete": {
                    "operationId": "revokeFileLinks",
                    "summary": "Revoke every link to the file",
                    "security": bearer,
                    "parameters": [FILE_ID],
                    "responses": {"200": _REVOKED, **_errors(400, 401, 404, 421, 503)},
                },
            },
            "/v1/links": {
                "delete": {
                    "operationId": "revokeAllLinks",
                    "summary": "Revoke every link of this owner",
                    "security": bearer,
                    "responses": {"200": _REVOKED, **_errors(400, 401, 421, 503)},
                }
            },
            "/v1/links/{link_id}": {
                "delete": {
                    "operationId": "revokeLink",
                    "summary": "Revoke one link",
                    "security": bearer,
                    "parameters": [LINK_ID],
                    "responses": {"200": _REVOKED, **_errors(400, 401, 404, 421, 503)},
                }
            },
            "/v1/files/{file_id}/provider-id": {
                "post": {
                    "operationId": "getProviderFileId",
                    "summary": "The provider's file id, uploading there at most once",
                    "security": bearer,
                    "parameters": [FILE_ID],
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": ref("ProviderIdRequest")}},
                    },
                    "responses": {
                        "200": _json(ref("ProviderFileId"), "The provider's id."),
                        **_errors(400, 401, 404, 409, 413, 421, 429, 503),
                    },
                }
            },
        },
    }
