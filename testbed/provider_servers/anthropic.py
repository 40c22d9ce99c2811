"""A loopback Anthropic API: the Files API and the Messages API, as documented.

- Every ``/v1`` request needs the key (``x-api-key``, or ``Authorization: Bearer`` as
  newer SDKs send it) and ``anthropic-version``; with
  ``require_beta`` the Files API also needs ``anthropic-beta: files-api-2025-04-14``
  (deployments that still gate it), as do messages that refer to files.
- ``POST /v1/files``: multipart ``file`` and optional ``expires_in_seconds``
  (3,600-7,776,000); 500 MB per file (413 ``request_too_large``) and a total storage
  quota. Answers ``FileMetadata`` (``id`` ``file_...``, ``size_bytes``, RFC 3339
  ``created_at``/``expires_at``, ``downloadable: false``).
- ``GET /v1/files`` (``limit``, cursor ``page`` -> ``next_page``), ``GET``/``DELETE
  /v1/files/{id}``, ``GET /v1/files/{id}/content`` (refused: uploads are not
  downloadable). Unknown or expired ids answer 404 ``not_found_error``.
- ``POST /v1/messages``: ``document``/``image`` blocks with ``source: {type: "file",
  file_id}``; an unknown file is 404, an image block naming a non-image is 400. The
  answer names each file the model was given, and quotes text documents, so tests can
  see what reached the model.

Errors look like Anthropic's: ``{"type": "error", "error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testbed.provider_servers._loopback import MB, LoopbackProvider, StoredFile, new_id

API_VERSION = "2023-06-01"
FILES_BETA = "files-api-2025-04-14"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class AnthropicServer(LoopbackProvider):
    name = "anthropic-loopback"

    def __init__(
        self,
        api_key: str = "sk-ant-test",
        *,
        require_beta: bool = False,
        max_file_bytes: int = 500 * MB,
        max_total_bytes: int = 100 * 1024 * MB,
    ) -> None:
        super().__init__(api_key)
        self.require_beta = require_beta
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return JSONResponse(
            {"type": "error", "error": {"type": kind, "message": message}},
            status_code=status,
            headers=headers,
        )

    def authorized(self, request: Request) -> Response | None:
        # The key comes as x-api-key, or (newer SDKs) as a bearer token; both are documented.
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return self.error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required")
        betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
        if self.require_beta and FILES_BETA not in betas:
            return self.error(400, f"the Files API needs the 'anthropic-beta: {FILES_BETA}' header")
        return None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self._upload, methods=["POST"]),
            Route("/v1/files", self._list, methods=["GET"]),
            Route("/v1/files/{file_id}", self._metadata, methods=["GET"]),
            Route("/v1/files/{file_id}", self._delete, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self._content, methods=["GET"]),
            Route("/v1/messages", self._messages, methods=["POST"]),
        ]

    # -- files -------------------------------------------------------------------------

    def _obj(self, stored: StoredFile) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": stored.id,
            "type": "file",
            "filename": stored.filename,
            "mime_type": stored.mime_type,
            "size_bytes": len(stored.data),
            "created_at": _rfc3339(stored.created_at),
            "downloadable": False,
        }
        if stored.expires_at is not None:
            obj["expires_at"] = _rfc3339(stored.expires_at)
        return obj

    async def _upload(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self.error(400, "request must be multipart/form-data")
        # The form's spooled temp files are closed when the block ends.
        async with request.form(max_part_size=self.max_file_bytes + 1) as form:
            return await self._store_upload(form)

    async def _store_upload(self, form: FormData) -> Response:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return self.error(400, "file: field required")
        data = await upload.read()
        if len(data) > self.max_file_bytes:
            return self.error(413, "File too large: the maximum file size is 500 MB")
        used = sum(len(f.data) for f in self.state.files.values())
        if used + len(data) > self.max_total_bytes:
            return self.error(400, "storage quota exceeded for this organization")
        expires_at = None
        ttl = form.get("expires_in_seconds")
        if ttl is not None:
            if not isinstance(ttl, str) or not ttl.isdigit() or not 3600 <= int(ttl) <= 7776000:
                return self.error(400, "expires_in_seconds must be between 3600 and 7776000")
            expires_at = time.time() + int(ttl)
        stored = StoredFile(
            id=new_id("file_"),
            filename=(upload.filename or "unnamed").rsplit("/", 1)[-1],
            data=data,
            created_at=time.time(),
            mime_type=(upload.content_type or "application/octet-stream").split(";")[0],
            expires_at=expires_at,
        )
        self.state.add(stored)
        return JSONResponse(self._obj(stored))

    async def _list(self, request: Request) -> Response:
        limit = int(request.query_params.get("limit", "20"))
        if not 1 <= limit <= 1000:
            return self.error(400, "limit must be between 1 and 1000")
        with self.state.lock:
            ordered = sorted(self.state.files.values(), key=lambda f: (f.created_at, f.id))
        start = 0
        page = request.query_params.get("page")
        if page:
            ids = [f.id for f in ordered]
            cursor = page.removeprefix("page_")
            start = ids.index(cursor) + 1 if cursor in ids else len(ids)
        chunk = [f for f in ordered[start : start + limit] if self.state.get(f.id) is not None]
        more = start + limit < len(ordered)
        return JSONResponse(
            {
                "data": [self._obj(f) for f in chunk],
                "has_more": more,
                "first_id": chunk[0].id if chunk else None,
                "last_id": chunk[-1].id if chunk else None,
                "next_page": f"page_{chunk[-1].id}" if more and chunk else None,
            }
        )

    async def _metadata(self, request: Request) -> Response:
        stored = self.state.get(request.path_params["file_id"])
        if stored is None:
            return self.error(404, "File not found")
        return JSONResponse(self._obj(stored))

    async def _delete(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not self.state.remove(file_id):
            return self.error(404, "File not found")
        return JSONResponse({"id": file_id, "type": "file_deleted"})

    async def _content(self, request: Request) -> Response:
        if self.state.get(request.path_params["file_id"]) is None:
            return self.error(404, "File not found")
        return self.error(400, "This file is not downloadable")

    # -- messages ----------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error(400, "body is not JSON")
        with self.state.lock:
            self.state.bodies.append(body)
        if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
            return self.error(400, "model and max_tokens are required")
        seen: list[str] = []
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                seen.append(f"text: {content}")
                continue
            for block in content or []:
                if block.get("type") == "text":
                    seen.append(f"text: {block.get('text')}")
                    continue
                source = block.get("source") or {}
                if source.get("type") != "file":
                    return self.error(400, f"unsupported source type {source.get('type')!r}")
                stored = self.state.get(str(source.get("file_id")))
                if stored is None:
                    return self.error(404, f"File not found: {source.get('file_id')}")
                if block.get("type") == "image" and not stored.mime_type.startswith("image/"):
                    return self.error(400, f"{stored.id} is not an image")
                quoted = (
                    stored.data.decode("utf-8", "replace")[:200]
                    if stored.mime_type.startswith("text/")
                    else f"{len(stored.data)} bytes"
                )
                seen.append(f"{block.get('type')} {stored.filename}: {quoted}")
        answer = " | ".join(seen)
        return JSONResponse(
            {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": len(answer.split()), "output_tokens": 1},
            }
        )
