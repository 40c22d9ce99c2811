"""A loopback stand-in for Google's Gemini Files API, spoken to through ``google-genai``.

What it implements, as documented for the Gemini API (``v1beta``):

- the resumable upload: ``POST /upload/v1beta/files`` with ``X-Goog-Upload-Protocol:
  resumable``, ``X-Goog-Upload-Command: start`` and the declared
  ``X-Goog-Upload-Header-Content-Length`` answers ``X-Goog-Upload-URL`` (a session URL) and
  ``X-Goog-Upload-Status: active``; then ``POST <session URL>`` with ``X-Goog-Upload-Command:
  upload`` (or ``upload, finalize`` on the last chunk) and ``X-Goog-Upload-Offset``. The
  final answer is ``{"file": File}`` with ``X-Goog-Upload-Status: final``;
- ``GET /v1beta/files/{id}``, ``DELETE /v1beta/files/{id}``, ``GET /v1beta/files`` (paged
  with ``pageSize``/``pageToken``), ``POST /v1beta/models/{model}:generateContent``;
- File resources with ``name``, ``displayName``, ``mimeType``, ``sizeBytes`` (a string),
  ``createTime``/``updateTime``/``expirationTime`` (RFC 3339), ``sha256Hash`` (base64),
  ``uri``, ``state`` (``PROCESSING`` until ``ACTIVE``, or ``FAILED``), ``source``;
- files are deleted ``ttl_seconds`` (48 hours) after upload; an unknown, deleted or expired
  file answers **403 PERMISSION_DENIED**, as Gemini does, never 404;
- every ``/v1beta`` and upload-start request needs ``x-goog-api-key``; a wrong one answers
  400 ``API_KEY_INVALID``; 2 GB per file and 20 GB per project are enforced (400).

The clock is the server's own (:meth:`GeminiServer.advance`), so tests can let 48 hours
pass in no time. Faults are injected with :meth:`GeminiServer.fail_next`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testbed.provider_servers._loopback import Fault, Faults, UvicornThread

MB = 1024 * 1024
GB = 1024 * MB
DEFAULT_KEY = "gemini-test-key"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _File:
    id: str
    display_name: str
    mime_type: str
    data: bytes
    created: float
    expires: float
    ready_at: float
    fail: bool
    sha256_b64: str

    def state(self, now: float) -> str:
        if now < self.ready_at:
            return "PROCESSING"
        return "FAILED" if self.fail else "ACTIVE"

    def resource(self, base: str, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": f"files/{self.id}",
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.created),
            "expirationTime": _rfc3339(self.expires),
            "sha256Hash": self.sha256_b64,
            "uri": f"{base}/v1beta/files/{self.id}",
            "state": self.state(now),
            "source": "UPLOADED",
        }
        if self.state(now) == "FAILED":
            body["error"] = {"code": 400, "message": "the file could not be processed"}
        return body


@dataclass
class _Session:
    display_name: str
    mime_type: str
    declared: int
    received: bytearray = field(default_factory=bytearray)


@dataclass
class GeminiState:
    api_key: str = DEFAULT_KEY
    ttl_seconds: float = 48 * 3600
    processing_seconds: float = 0.0
    fail_processing: bool = False
    corrupt_hash: bool = False
    max_file_bytes: int = 2 * GB
    max_total_bytes: int = 20 * GB
    offset: float = 0.0  # added to the wall clock: the server's idea of "now"
    files: dict[str, _File] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    uploads: int = 0
    chunk_sizes: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.time() + self.offset

    def live(self, file_id: str) -> _File | None:
        """The file, unless unknown or past its expiry (then it is gone for good)."""
        found = self.files.get(file_id)
        if found is not None and self.now() >= found.expires:
            del self.files[file_id]
            return None
        return found

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self.faults.take(method, path)


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": status, "message": message, "status": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _denied(file_id: str) -> Response:
    return _error(
        403,
        f"You do not have permission to access the File {file_id} or it may not exist.",
        "PERMISSION_DENIED",
    )


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def build_app(state: GeminiState) -> Starlette:
    async def start_or_chunk(request: Request) -> Response:
        upload_id = request.query_params.get("upload_id")
        if upload_id is not None:
            return await chunk(request, upload_id)
        if request.headers.get("x-goog-upload-protocol") != "resumable":
            return _error(400, "only resumable uploads are supported here", "INVALID_ARGUMENT")
        if request.headers.get("x-goog-upload-command") != "start":
            return _error(
                400, "the first request must be X-Goog-Upload-Command: start", "INVALID_ARGUMENT"
            )
        try:
            declared = int(request.headers["x-goog-upload-header-content-length"])
        except (KeyError, ValueError):
            return _error(
                400, "X-Goog-Upload-Header-Content-Length is required", "INVALID_ARGUMENT"
            )
        meta = json.loads(await request.body() or b"{}").get("file") or {}
        with state.lock:
            if declared > state.max_file_bytes:
                return _error(
                    400, f"File size {declared} exceeds the 2 GB limit", "INVALID_ARGUMENT"
                )
            total = sum(len(f.data) for f in state.files.values())
            if total + declared > state.max_total_bytes:
                return _error(
                    400, "Storage quota exceeded for project: 20 GB", "RESOURCE_EXHAUSTED"
                )
            session_id = secrets.token_hex(12)
            state.sessions[session_id] = _Session(
                # google-genai sends snake_case field names here; the REST docs camelCase.
                display_name=str(meta.get("displayName") or meta.get("display_name") or ""),
                mime_type=request.headers.get(
                    "x-goog-upload-header-content-type", "application/octet-stream"
                ),
                declared=declared,
            )
        url = (
            f"{_base(request)}/upload/v1beta/files?upload_id={session_id}&upload_protocol=resumable"
        )
        return Response(b"", headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})

    async def chunk(request: Request, session_id: str) -> Response:
        command = request.headers.get("x-goog-upload-command", "")
        body = await request.body()
        with state.lock:
            session = state.sessions.get(session_id)
            if session is None:
                return _error(404, "no such upload session", "NOT_FOUND")
            offset = int(request.headers.get("x-goog-upload-offset", "-1"))
            if offset != len(session.received):
                return _error(
                    400, f"offset {offset} is not {len(session.received)}", "INVALID_ARGUMENT"
                )
            session.received += body
            state.chunk_sizes.append(len(body))
            if "finalize" not in command:
                return Response(b"", headers={"X-Goog-Upload-Status": "active"})
            del state.sessions[session_id]
            data = bytes(session.received)
            if len(data) != session.declared:
                return _error(
                    400, "received size differs from the declared size", "INVALID_ARGUMENT"
                )
            digest = hashlib.sha256(b"corrupted" + data if state.corrupt_hash else data).digest()
            now = state.now()
            stored = _File(
                id=secrets.token_hex(6),
                display_name=session.display_name,
                mime_type=session.mime_type,
                data=data,
                created=now,
                expires=now + state.ttl_seconds,
                ready_at=now + state.processing_seconds,
                fail=state.fail_processing,
                sha256_b64=base64.b64encode(digest).decode(),
            )
            state.files[stored.id] = stored
            state.uploads += 1
            resource = stored.resource(_base(request), now)
        return JSONResponse({"file": resource}, headers={"X-Goog-Upload-Status": "final"})

    async def get_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with state.lock:
            found = state.live(file_id)
            if found is None:
                return _denied(f"files/{file_id}")
            return JSONResponse(found.resource(_base(request), state.now()))

    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with state.lock:
            if state.live(file_id) is None:
                return _denied(f"files/{file_id}")
            del state.files[file_id]
        return JSONResponse({})

    async def list_files(request: Request) -> Response:
        size = int(request.query_params.get("pageSize", "10"))
        start = int(request.query_params.get("pageToken") or 0)
        with state.lock:
            ids = sorted(state.files)
            alive = [state.live(i) for i in ids]
            page = [f for f in alive if f is not None][start : start + size]
            total = sum(1 for f in alive if f is not None)
            body: dict[str, Any] = {
                "files": [f.resource(_base(request), state.now()) for f in page]
            }
        if start + size < total:
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    async def generate(request: Request) -> Response:
        body = json.loads(await request.body())
        texts = [
            part.get("text", "")
            for content in body.get("contents", [])
            for part in content.get("parts", [])
        ]
        return JSONResponse(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": f"echo: {texts[-1]}"}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
            }
        )

    app = Starlette(
        routes=[
            Route("/upload/v1beta/files", start_or_chunk, methods=["POST"]),
            Route("/v1beta/files/{file_id}", get_file, methods=["GET"]),
            Route("/v1beta/files/{file_id}", delete_file, methods=["DELETE"]),
            Route("/v1beta/files", list_files, methods=["GET"]),
            Route("/v1beta/models/{model}:generateContent", generate, methods=["POST"]),
        ]
    )

    async def gate(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode()
        status_box: list[int] = []

        async def logged_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status_box.append(message["status"])
                with state.lock:
                    state.log.append(
                        (
                            method,
                            path + ("?session" if "upload_id" in query else ""),
                            message["status"],
                        )
                    )
            await send(message)

        headers = dict(scope.get("headers") or [])
        in_session = "upload_id=" in query  # the session URL is the credential
        if not in_session and headers.get(b"x-goog-api-key", b"").decode() != state.api_key:
            response = _error(
                400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"
            )
            await response(scope, receive, logged_send)
            return
        fault = state.take_fault(method, path + "?" + query)
        if fault is not None:
            extra = (
                {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            )
            code = {429: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED"}.get(
                fault.status, "INTERNAL"
            )
            response = _error(fault.status, f"injected {fault.status}", code, extra)
            await response(scope, receive, logged_send)
            return
        await app(scope, receive, logged_send)

    return gate  # type: ignore[return-value]


class GeminiServer:
    """``with GeminiServer() as g: genai.Client(api_key=g.api_key, http_options={"base_url": g.url})``"""

    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        self.state = GeminiState(api_key=api_key)
        self.app = build_app(self.state)
        self._serving = UvicornThread(self.app, "gemini loopback server")

    def start(self) -> Self:
        self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        return self._serving.url

    @property
    def api_key(self) -> str:
        return self.state.api_key

    # -- control --------------------------------------------------------------------------

    def reset(self) -> None:
        self.state.faults.clear()
        with self.state.lock:
            fresh = GeminiState(api_key=self.state.api_key)
            for name in (
                "ttl_seconds",
                "processing_seconds",
                "fail_processing",
                "corrupt_hash",
                "max_file_bytes",
                "max_total_bytes",
                "offset",
                "uploads",
            ):
                setattr(self.state, name, getattr(fresh, name))
            self.state.files.clear()
            self.state.sessions.clear()
            self.state.log.clear()
            self.state.chunk_sizes.clear()

    def configure(self, **changes: Any) -> None:
        with self.state.lock:
            for name, value in changes.items():
                if not hasattr(self.state, name):
                    raise AttributeError(name)
                setattr(self.state, name, value)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the server's clock (expiry, processing)."""
        with self.state.lock:
            self.state.offset += seconds

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
    ) -> None:
        self.state.faults.add(count, status, retry_after, path_contains, method=method)

    def forget(self, name: str) -> bool:
        """Delete a file on Google's side (console, expiry): later 403s."""
        with self.state.lock:
            return self.state.files.pop(name.removeprefix("files/"), None) is not None

    @property
    def upload_count(self) -> int:
        with self.state.lock:
            return self.state.uploads

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        with self.state.lock:
            return list(self.state.log)

    @property
    def chunk_sizes(self) -> list[int]:
        with self.state.lock:
            return list(self.state.chunk_sizes)

    def file_bytes(self, name: str) -> bytes:
        with self.state.lock:
            return self.state.files[name.removeprefix("files/")].data

    @property
    def file_ids(self) -> list[str]:
        """The names (``files/…``) of the files Google holds now, as the SDK reports them."""
        return self.file_names()

    def file_names(self) -> list[str]:
        with self.state.lock:
            return [f"files/{i}" for i in self.state.files]
