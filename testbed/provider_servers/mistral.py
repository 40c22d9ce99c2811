"""A loopback Mistral API: the files API, its signed URLs, and chat completions.

- Every ``/v1`` request needs ``Authorization: Bearer <key>`` (401 ``Unauthorized``).
- ``POST /v1/files``: multipart ``file`` + ``purpose`` (``fine-tune``, ``batch``, ``ocr``;
  anything else is 422 with FastAPI's validation shape) + optional ``expiry``; 512 MB
  per file (413). Answers ``{id, object: "file", bytes, created_at, filename, purpose,
  sample_type, source: "upload", mimetype}``.
- ``GET /v1/files?page=&page_size=`` (``{data, object: "list", total}``),
  ``GET``/``DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content`` (the bytes).
- ``GET /v1/files/{id}/url?expiry=HOURS`` (1-168): ``{"url": ...}``, a URL under
  ``/signed/`` that reads the bytes with no key until it expires.
- ``POST /v1/chat/completions``: text, ``document_url`` and ``image_url`` chunks; a
  document URL is fetched the way Mistral would (it must be one of our signed URLs,
  still valid, naming a file that still exists, else 400). The answer names each
  document and quotes text ones.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testbed.provider_servers._loopback import MB, LoopbackProvider, StoredFile

PURPOSES = ("fine-tune", "batch", "ocr")
SAMPLE_TYPES = {"fine-tune": "instruct", "batch": "batch_request", "ocr": "ocr_input"}


class MistralServer(LoopbackProvider):
    name = "mistral-loopback"

    def __init__(self, api_key: str = "mistral-test", *, max_file_bytes: int = 512 * MB) -> None:
        super().__init__(api_key)
        self.max_file_bytes = max_file_bytes
        self._signed: dict[str, tuple[str, float]] = {}  # token -> (file id, expires)

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            {"object": "error", "message": message, "type": "invalid_request_error", "code": None},
            status_code=status,
            headers=headers,
        )

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(
                {"message": "Unauthorized", "request_id": secrets.token_hex(8)}, status_code=401
            )
        return None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self._upload, methods=["POST"]),
            Route("/v1/files", self._list, methods=["GET"]),
            Route("/v1/files/{file_id}", self._retrieve, methods=["GET"]),
            Route("/v1/files/{file_id}", self._delete, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self._content, methods=["GET"]),
            Route("/v1/files/{file_id}/url", self._signed_url, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/signed/{token}", self._fetch_signed, methods=["GET"]),
        ]

    @property
    def signed_url_count(self) -> int:
        return sum(
            1 for _, path, status in self.requests if path.endswith("/url") and status == 200
        )

    # -- files -------------------------------------------------------------------------

    def _obj(self, stored: StoredFile, **extra: Any) -> dict[str, Any]:
        return {
            "id": stored.id,
            "object": "file",
            "bytes": len(stored.data),
            "created_at": int(stored.created_at),
            "filename": stored.filename,
            "purpose": stored.purpose,
            "sample_type": SAMPLE_TYPES.get(stored.purpose or "", "pretrain"),
            "source": "upload",
            "num_lines": None,
            "mimetype": stored.mime_type,
            "signature": None,
            "expires_at": int(stored.expires_at) if stored.expires_at else None,
            **extra,
        }

    async def _upload(self, request: Request) -> Response:
        # The form's spooled temp files are closed when the block ends.
        async with request.form(max_part_size=self.max_file_bytes + 1) as form:
            return await self._store_upload(form)

    async def _store_upload(self, form: FormData) -> Response:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return self.error(422, "file: Field required")
        purpose = form.get("purpose")
        if purpose not in PURPOSES:
            detail = [
                {
                    "type": "enum",
                    "loc": ["body", "purpose"],
                    "msg": "Input should be 'fine-tune', 'batch' or 'ocr'",
                    "input": purpose,
                }
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        data = await upload.read()
        if len(data) > self.max_file_bytes:
            return self.error(413, "File too large: files may be at most 512 MB")
        expiry = form.get("expiry")
        stored = StoredFile(
            id=secrets.token_hex(16),
            filename=upload.filename or "file",
            data=data,
            created_at=time.time(),
            mime_type=(upload.content_type or "application/octet-stream").split(";")[0],
            purpose=str(purpose),
            expires_at=time.time() + int(expiry) * 3600
            if isinstance(expiry, str) and expiry.isdigit()
            else None,
        )
        self.state.add(stored)
        return JSONResponse(self._obj(stored))

    async def _list(self, request: Request) -> Response:
        page = int(request.query_params.get("page", "0"))
        size = int(request.query_params.get("page_size", "100"))
        with self.state.lock:
            ordered = sorted(self.state.files.values(), key=lambda f: (f.created_at, f.id))
        chunk = ordered[page * size : (page + 1) * size]
        return JSONResponse(
            {"data": [self._obj(f) for f in chunk], "object": "list", "total": len(ordered)}
        )

    async def _retrieve(self, request: Request) -> Response:
        stored = self.state.get(request.path_params["file_id"])
        if stored is None:
            return JSONResponse({"detail": "File not found"}, status_code=404)
        return JSONResponse(self._obj(stored, deleted=False))

    async def _delete(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not self.state.remove(file_id):
            return JSONResponse({"detail": "File not found"}, status_code=404)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def _content(self, request: Request) -> Response:
        stored = self.state.get(request.path_params["file_id"])
        if stored is None:
            return JSONResponse({"detail": "File not found"}, status_code=404)
        return Response(stored.data, media_type="application/octet-stream")

    async def _signed_url(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if self.state.get(file_id) is None:
            return JSONResponse({"detail": "File not found"}, status_code=404)
        hours = int(request.query_params.get("expiry", "24"))
        if not 1 <= hours <= 168:
            return self.error(422, "expiry must be between 1 and 168 hours")
        token = secrets.token_urlsafe(24)
        with self.state.lock:
            self._signed[token] = (file_id, time.time() + hours * 3600)
        return JSONResponse({"url": f"{self.url}/signed/{token}"})

    def _resolve(self, url: str) -> StoredFile | None:
        token = url.rsplit("/signed/", 1)[-1] if "/signed/" in url else ""
        with self.state.lock:
            found = self._signed.get(token)
        if found is None or found[1] < time.time():
            return None
        return self.state.get(found[0])

    async def _fetch_signed(self, request: Request) -> Response:
        stored = self._resolve(str(request.url))
        if stored is None:
            return Response("expired or unknown", status_code=403)
        return Response(stored.data, media_type=stored.mime_type)

    # -- chat --------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error(400, "body is not JSON")
        with self.state.lock:
            self.state.bodies.append(body)
        seen: list[str] = []
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, str):
                seen.append(f"{message.get('role')}: {content}")
                continue
            for chunk in content or []:
                kind = chunk.get("type")
                if kind == "text":
                    seen.append(f"text: {chunk.get('text')}")
                    continue
                url = chunk.get(kind)
                url = url.get("url") if isinstance(url, dict) else url
                stored = self._resolve(str(url))
                if stored is None:
                    return self.error(400, f"could not fetch the {kind}: {url}")
                quoted = (
                    stored.data.decode("utf-8", "replace")[:200]
                    if stored.mime_type.startswith("text/")
                    else f"{len(stored.data)} bytes"
                )
                seen.append(f"{kind} {stored.filename}: {quoted}")
        answer = " | ".join(seen)
        return JSONResponse(
            {
                "id": secrets.token_hex(8),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer, "tool_calls": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(answer.split()),
                    "completion_tokens": 1,
                    "total_tokens": len(answer.split()) + 1,
                },
            }
        )
