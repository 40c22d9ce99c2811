"""OpenAI's multipart Uploads API for the loopback provider (``testbed/provider_server.py``).

As documented: ``POST /v1/uploads`` (JSON ``bytes``, ``filename``, ``mime_type``,
``purpose``, optional ``expires_after``) opens an Upload of at most 8 GB; ``POST
/v1/uploads/{id}/parts`` (multipart field ``data``, at most 64 MB) adds a part;
``POST /v1/uploads/{id}/complete`` (JSON ``part_ids`` in order, optional ``md5``) joins
them, checks the total against ``bytes`` and makes the File; ``POST .../cancel`` drops
it. A completed or cancelled Upload takes no more parts.

For tests: :class:`UploadsState` counts parts in flight at once (``max_in_flight``) and
their sizes, and ``part_seconds`` holds each part that long (so parallelism shows).
Faults come from the provider's ``fail_next(..., path_contains="/parts")``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testbed.provider_servers.multipart import parse_multipart

if TYPE_CHECKING:
    from testbed.provider_server import ProviderState

MB = 1024 * 1024
MAX_UPLOAD_BYTES = 8 * 1024 * MB
MAX_PART_BYTES = 64 * MB


@dataclass
class _Upload:
    id: str
    bytes: int
    filename: str
    mime_type: str
    purpose: str
    created_at: int
    expires_after: int | None
    status: str = "pending"
    parts: dict[str, bytes] = field(default_factory=dict)
    file: dict[str, Any] | None = None

    def obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.created_at + 3600,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": self.file,
        }


@dataclass
class UploadsState:
    part_seconds: float = 0.0
    uploads: dict[str, _Upload] = field(default_factory=dict)
    part_sizes: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    part_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.part_seconds = 0.0
            self.uploads.clear()
            self.part_sizes.clear()
            self.in_flight = self.max_in_flight = self.part_requests = 0

    def statuses(self) -> list[str]:
        with self.lock:
            return [u.status for u in self.uploads.values()]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
    )


def routes(state: ProviderState) -> list[Route]:
    uploads = state.uploads

    async def create(request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        purpose = str(body.get("purpose", ""))
        if purpose not in state.config.allowed_purposes:
            return _error(400, f"invalid purpose: {purpose!r}")
        size = int(body.get("bytes", -1))
        if not 0 < size <= MAX_UPLOAD_BYTES:
            return _error(400, f"bytes must be between 1 and {MAX_UPLOAD_BYTES}")
        expires = body.get("expires_after")
        upload = _Upload(
            id=f"upload_{secrets.token_hex(8)}",
            bytes=size,
            filename=str(body.get("filename", "")),
            mime_type=str(body.get("mime_type", "")),
            purpose=purpose,
            created_at=int(state.now()),
            expires_after=int(expires["seconds"]) if isinstance(expires, dict) else None,
        )
        with uploads.lock:
            uploads.uploads[upload.id] = upload
        return JSONResponse(upload.obj())

    async def add_part(request: Request) -> Response:
        upload_id = request.path_params["upload_id"]
        parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
        data = next((p.data for p in parts if p.name == "data"), None)
        with uploads.lock:
            uploads.part_requests += 1
            upload = uploads.uploads.get(upload_id)
            uploads.in_flight += 1
            uploads.max_in_flight = max(uploads.max_in_flight, uploads.in_flight)
        try:
            await asyncio.sleep(uploads.part_seconds)
            if upload is None:
                return _error(404, "upload not found")
            if data is None:
                return _error(400, "missing required field: data")
            if len(data) > MAX_PART_BYTES:
                return _error(400, "a part may hold at most 64 MB")
            with uploads.lock:
                if upload.status != "pending":
                    return _error(400, f"upload is {upload.status}")
                part_id = f"part_{secrets.token_hex(8)}"
                upload.parts[part_id] = data
                uploads.part_sizes.append(len(data))
            return JSONResponse(
                {
                    "id": part_id,
                    "object": "upload.part",
                    "created_at": int(state.now()),
                    "upload_id": upload_id,
                }
            )
        finally:
            with uploads.lock:
                uploads.in_flight -= 1

    async def complete(request: Request) -> Response:
        upload_id = request.path_params["upload_id"]
        body = json.loads(await request.body() or b"{}")
        with uploads.lock:
            upload = uploads.uploads.get(upload_id)
            if upload is None:
                return _error(404, "upload not found")
            if upload.status != "pending":
                return _error(400, f"upload is {upload.status}")
            ids = list(body.get("part_ids", []))
            if any(i not in upload.parts for i in ids):
                return _error(400, "unknown part id")
            data = b"".join(upload.parts[i] for i in ids)
            if len(data) != upload.bytes:
                return _error(400, f"parts hold {len(data)} bytes, not {upload.bytes}")
        obj = state.add_file(
            upload.filename,
            data,
            upload.purpose,
            count_upload=True,
            expires_after=upload.expires_after,
        )
        with uploads.lock:
            upload.status = "completed"
            upload.file = obj
            upload.parts.clear()
        return JSONResponse(upload.obj())

    async def cancel(request: Request) -> Response:
        with uploads.lock:
            upload = uploads.uploads.get(request.path_params["upload_id"])
            if upload is None:
                return _error(404, "upload not found")
            if upload.status != "pending":
                return _error(400, f"upload is {upload.status}")
            upload.status = "cancelled"
            upload.parts.clear()
        return JSONResponse(upload.obj())

    return [
        Route("/v1/uploads", create, methods=["POST"]),
        Route("/v1/uploads/{upload_id}/parts", add_part, methods=["POST"]),
        Route("/v1/uploads/{upload_id}/complete", complete, methods=["POST"]),
        Route("/v1/uploads/{upload_id}/cancel", cancel, methods=["POST"]),
    ]
