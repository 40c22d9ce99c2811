"""A loopback stand-in for LLM providers' OpenAI-compatible file APIs (Kimi, GLM, ...).

The real providers cannot be reached from the test machines, so this server speaks their
documented wire protocol under ``/v1`` and can be told to fail:

- ``POST /v1/files`` (multipart ``file`` + ``purpose``), ``GET /v1/files``,
  ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``,
  ``POST /v1/chat/completions``; bodies and errors shaped like OpenAI's.
- Like Moonshot Kimi, ``/content`` answers the *extracted text* as JSON
  (``{"content": ..., "file_type": ..., "filename": ..., "title": "", "type": "file"}``),
  never the original bytes. The "extraction" is the bytes decoded as UTF-8 with
  ``errors="replace"``, so tests can predict it. ``returns_content=False`` makes the
  endpoint refuse (400), like providers that do not hand files back.
- Every ``/v1`` request needs ``Authorization: Bearer <api_key>``.

Fault injection and observation live on :class:`ProviderServer` (thread-safe) and, for
other processes or event loops, under ``/_control`` (no auth; see :class:`ProviderControl`).

The multipart body is parsed here rather than with ``python-multipart`` so the server needs
nothing beyond starlette and uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import mimetypes
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from testbed.provider_servers._loopback import Fault, Faults, UvicornThread
from testbed.provider_servers.multipart import parse_multipart
from testbed.provider_servers.openai_uploads import UploadsState
from testbed.provider_servers.openai_uploads import routes as uploads_routes

__all__ = [
    "DEFAULT_PURPOSES",
    "ProviderConfig",
    "ProviderControl",
    "ProviderServer",
    "ProviderState",
    "build_app",
]

MB = 1024 * 1024
GB = 1024 * MB
DEFAULT_PURPOSES = frozenset({"file-extract", "image", "video", "assistants", "batch"})
DEFAULT_API_KEY = "sk-provider-test"

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ProviderConfig:
    """What the provider accepts. Changed at run time with ``configure``."""

    api_key: str = DEFAULT_API_KEY
    returns_content: bool = True
    allowed_purposes: frozenset[str] = DEFAULT_PURPOSES
    max_file_bytes: int = 100 * MB
    max_files: int = 1000
    max_total_bytes: int = 10 * GB


@dataclass
class _Delay:
    seconds: float
    path_contains: str | None
    method: str | None
    count: int | None  # None: every matching request until cleared
    # False: held before it is handled; True: handled at once, its answer held (the state
    # it reports is then older than the answer's arrival, as over a slow network).
    answer: bool = False

    def matches(self, method: str, path: str) -> bool:
        return _matches(self.method, self.path_contains, method, path)


def _matches(want_method: str | None, want_path: str | None, method: str, path: str) -> bool:
    if want_method is not None and want_method.upper() != method:
        return False
    return want_path is None or want_path in path


@dataclass
class _StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes
    text: str | None = None  # extracted text override (seeded files)
    expires_at: int | None = None  # from expires_after; gone (404) from then on

    def obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "ok",
            "status_details": "",
        }

    def extracted_text(self) -> str:
        if self.text is not None:
            return self.text
        return self.data.decode("utf-8", errors="replace")


class _Aborted(Exception):
    """A delayed request outlived a ``reset()`` or the server's ``stop()``."""


@dataclass
class ProviderState:
    """Everything the server knows; every method is safe to call from any thread."""

    initial_config: ProviderConfig = field(default_factory=ProviderConfig)
    config: ProviderConfig = field(init=False)
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _files: dict[str, _StoredFile] = field(default_factory=dict)
    _faults: Faults = field(default_factory=Faults)
    _delays: list[_Delay] = field(default_factory=list)
    _log: list[tuple[str, str, int]] = field(default_factory=list)
    _chat: list[dict[str, Any]] = field(default_factory=list)
    _uploads: int = 0
    _generation: int = 0
    _clock_offset: float = 0.0
    uploads: UploadsState = field(default_factory=UploadsState)  # the multipart Uploads API

    def __post_init__(self) -> None:
        self.config = self.initial_config

    def now(self) -> float:
        """The provider's clock: the wall clock plus whatever ``advance`` added."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    def _drop_expired(self) -> None:
        # Called with the lock held: files past expires_after are gone, as at OpenAI.
        now = self.now()
        for file_id in [
            f.id for f in self._files.values() if f.expires_at is not None and f.expires_at <= now
        ]:
            del self._files[file_id]

    # -- configuration and faults ---------------------------------------------------------

    def configure(self, **changes: Any) -> ProviderConfig:
        if "allowed_purposes" in changes:
            changes["allowed_purposes"] = frozenset(changes["allowed_purposes"])
        with self._lock:
            self.config = replace(self.config, **changes)
            return self.config

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        message: str | None = None,
    ) -> None:
        self._faults.add(count, status, retry_after, path_contains, method=method, message=message)

    def set_delay(
        self,
        seconds: float,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        count: int | None = None,
        answer: bool = False,
    ) -> None:
        with self._lock:
            self._delays = [
                d
                for d in self._delays
                if (d.path_contains, d.method, d.answer) != (path_contains, method, answer)
            ]
            if seconds > 0:
                self._delays.append(_Delay(seconds, path_contains, method, count, answer))

    def global_delay(self) -> float:
        with self._lock:
            for delay in self._delays:
                if delay.path_contains is None and delay.method is None:
                    return delay.seconds
        return 0.0

    def reset(self) -> None:
        with self._lock:
            self.config = self.initial_config
            self._files.clear()
            self._faults.clear()
            self._delays.clear()
            self._log.clear()
            self._chat.clear()
            self._uploads = 0
            self._generation += 1
            self._clock_offset = 0.0
        self.uploads.reset()

    # -- files ----------------------------------------------------------------------------

    def add_file(
        self,
        filename: str,
        data: bytes,
        purpose: str = "file-extract",
        *,
        text: str | None = None,
        enforce_limits: bool = False,
        count_upload: bool = False,
        expires_after: int | None = None,
    ) -> dict[str, Any]:
        """Store a file; raises ``_LimitError`` when ``enforce_limits`` and over a limit."""
        with self._lock:
            if enforce_limits:
                self._check_limits(purpose, len(data))
            created = int(self.now())
            stored = _StoredFile(
                id=f"file-{secrets.token_hex(12)}",
                filename=filename,
                purpose=purpose,
                created_at=created,
                data=data,
                text=text,
                expires_at=created + expires_after if expires_after else None,
            )
            self._files[stored.id] = stored
            if count_upload:
                self._uploads += 1
            return stored.obj()

    def _check_limits(self, purpose: str, size: int) -> None:
        # Only the per-file limit says "file size"/"too large"; the quota messages say
        # "exceeded" and "limit" but not that, so a client can tell the two apart.
        config = self.config
        if purpose not in config.allowed_purposes:
            allowed = ", ".join(sorted(config.allowed_purposes))
            raise _LimitError(f"invalid purpose: {purpose!r}, must be one of: {allowed}")
        if size > config.max_file_bytes:
            raise _LimitError(
                f"file size exceeded: {size} bytes is too large, "
                f"exceeded max file size {config.max_file_bytes} bytes"
            )
        if len(self._files) >= config.max_files:
            raise _LimitError(
                f"file count exceeded: the limit is {config.max_files} files, "
                "delete some files before uploading more"
            )
        total = sum(len(f.data) for f in self._files.values())
        if total + size > config.max_total_bytes:
            raise _LimitError(
                f"storage quota exceeded: the limit is {config.max_total_bytes} bytes in total "
                f"({total} bytes stored, {size} more refused)"
            )

    def get(self, file_id: str) -> _StoredFile | None:
        with self._lock:
            self._drop_expired()
            return self._files.get(file_id)

    def remove(self, file_id: str) -> bool:
        with self._lock:
            self._drop_expired()
            return self._files.pop(file_id, None) is not None

    def file_objects(self, purpose: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self._drop_expired()
            return [
                f.obj() for f in self._files.values() if purpose is None or f.purpose == purpose
            ]

    def file_bytes(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].data

    # -- observation ----------------------------------------------------------------------

    @property
    def upload_count(self) -> int:
        with self._lock:
            return self._uploads

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._log)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._chat)

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        prefix = _normalize_prefix(path_prefix)
        with self._lock:
            return sum(
                1
                for m, p, _ in self._log
                if (method is None or m == method.upper()) and p.startswith(prefix)
            )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "upload_count": self._uploads,
                "request_count": len(self._log),
                "requests": [list(entry) for entry in self._log],
                "files": {fid: f.obj() for fid, f in self._files.items()},
                "chat_requests": copy.deepcopy(self._chat),
                "config": _config_json(self.config),
            }

    # -- used by the ASGI gate ------------------------------------------------------------

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def take_delay(self, method: str, path: str, *, answer: bool = False) -> float:
        with self._lock:
            for delay in self._delays:
                if delay.answer == answer and delay.matches(method, path):
                    if delay.count is not None:
                        delay.count -= 1
                        if delay.count <= 0:
                            self._delays.remove(delay)
                    return delay.seconds
        return 0.0

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self._faults.take(method, path)

    def record(self, method: str, path: str, status: int, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._log.append((method, path, status))

    def record_chat(self, body: dict[str, Any], generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._chat.append(copy.deepcopy(body))

    async def sleep(self, seconds: float, generation: int) -> None:
        """Sleep, but give up as soon as the server stops or is reset."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.stopping.is_set() or self.generation() != generation:
                raise _Aborted
            await asyncio.sleep(min(remaining, 0.02))


class _LimitError(Exception):
    pass


def _normalize_prefix(prefix: str) -> str:
    """``"/files"`` and ``"files"`` mean ``"/v1/files"``; full paths are kept."""
    if not prefix:
        return "/v1"
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if prefix.startswith(("/v1/", "/_control")) or prefix == "/v1":
        return prefix
    return "/v1" + prefix


def _config_json(config: ProviderConfig) -> dict[str, Any]:
    return {
        "api_key": config.api_key,
        "returns_content": config.returns_content,
        "allowed_purposes": sorted(config.allowed_purposes),
        "max_file_bytes": config.max_file_bytes,
        "max_files": config.max_files,
        "max_total_bytes": config.max_total_bytes,
    }


# -- responses ------------------------------------------------------------------------------


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "type": type_}
    if code is not None:
        body["code"] = code
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _not_found() -> JSONResponse:
    return _error(404, "file not found", "resource_not_found_error", "file_not_found")


def _fault_response(fault: Fault) -> JSONResponse:
    headers = None
    if fault.retry_after is not None:
        # An integer when it is one ("1", not "1.0"): that is what HTTP-date-less
        # Retry-After usually carries, and clients parse both.
        value = fault.retry_after
        headers = {"Retry-After": str(int(value)) if float(value).is_integer() else str(value)}
    status = fault.status
    if status == 429:
        message, type_ = "rate limit reached", "rate_limit_reached_error"
    elif status >= 500:
        message, type_ = f"injected server error ({status})", "server_error"
    elif status == 401:
        message, type_ = "Invalid Authentication", "invalid_authentication_error"
    elif status == 404:
        message, type_ = "file not found", "resource_not_found_error"
    else:
        message, type_ = f"injected error ({status})", "invalid_request_error"
    return _error(status, fault.message or message, type_, headers=headers)


# -- /v1 handlers ---------------------------------------------------------------------------


def _state(request: Request) -> ProviderState:
    state: ProviderState = request.app.state.provider
    return state


async def _upload(request: Request) -> Response:
    state = _state(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return _error(400, "request must be multipart/form-data", "invalid_request_error")
    try:
        parts = parse_multipart(await request.body(), content_type)
    except ValueError as exc:
        return _error(400, f"invalid multipart body: {exc}", "invalid_request_error")
    by_name = {part.name: part for part in parts}
    file_part = by_name.get("file")
    if file_part is None or file_part.filename is None:
        return _error(400, "missing required field: file", "invalid_request_error")
    purpose_part = by_name.get("purpose")
    if purpose_part is None:
        return _error(400, "missing required field: purpose", "invalid_request_error")
    purpose = purpose_part.data.decode("utf-8", errors="replace")
    seconds = by_name.get("expires_after[seconds]")
    try:
        obj = state.add_file(
            file_part.filename,
            file_part.data,
            purpose,
            enforce_limits=True,
            count_upload=True,
            expires_after=int(seconds.data) if seconds is not None else None,
        )
    except _LimitError as exc:
        return _error(400, str(exc), "invalid_request_error")
    return JSONResponse(obj)


async def _list(request: Request) -> Response:
    purpose = request.query_params.get("purpose")
    return JSONResponse(
        {"object": "list", "data": _state(request).file_objects(purpose), "has_more": False}
    )


async def _retrieve(request: Request) -> Response:
    stored = _state(request).get(request.path_params["file_id"])
    return _not_found() if stored is None else JSONResponse(stored.obj())


async def _content(request: Request) -> Response:
    state = _state(request)
    stored = state.get(request.path_params["file_id"])
    if stored is None:
        return _not_found()
    if not state.config.returns_content:
        return _error(
            400,
            f"Not allowed to download files of purpose: {stored.purpose}",
            "invalid_request_error",
            "content_not_available",
        )
    file_type = mimetypes.guess_type(stored.filename)[0] or "application/octet-stream"
    return JSONResponse(
        {
            "content": stored.extracted_text(),
            "file_type": file_type,
            "filename": stored.filename,
            "title": "",
            "type": "file",
        }
    )


async def _delete(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    if not _state(request).remove(file_id):
        return _not_found()
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def chat_answer(messages: Iterable[dict[str, Any]]) -> str:
    """The deterministic answer: ``"answer to <last user message> using <k> system messages"``."""
    messages = list(messages)
    last_user = next(
        (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    systems = sum(1 for m in messages if m.get("role") == "system")
    return f"answer to {last_user} using {systems} system messages"


async def _chat(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "request body is not valid JSON", "invalid_request_error")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object", "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "messages must be a non-empty list", "invalid_request_error")
    if not all(isinstance(m, dict) for m in messages):
        return _error(400, "every message must be an object", "invalid_request_error")
    _state(request).record_chat(body, request.scope["provider.generation"])
    answer = chat_answer(messages)
    model = str(body.get("model", ""))
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages)
    completion_tokens = len(answer.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if body.get("stream"):
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        base["model"] = model
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": answer}}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage})

        async def events() -> Any:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    )


# -- /_control handlers ---------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise HTTPException(400, "control body must be a JSON object")
    return body


async def _control_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def _control_request_count(request: Request) -> Response:
    query = request.query_params
    count = _state(request).request_count(query.get("method"), query.get("path_prefix", ""))
    return JSONResponse({"count": count})


async def _control_fail_next(request: Request) -> Response:
    body = await _json_body(request)
    try:
        _state(request).fail_next(**body)
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse({"ok": True})


async def _control_delay(request: Request) -> Response:
    body = await _json_body(request)
    try:
        _state(request).set_delay(**body)
    except TypeError as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse({"ok": True})


async def _control_forget(request: Request) -> Response:
    body = await _json_body(request)
    return JSONResponse({"forgotten": _state(request).remove(str(body.get("file_id")))})


async def _control_seed(request: Request) -> Response:
    body = await _json_body(request)
    if "content_b64" in body:
        data = base64.b64decode(body["content_b64"])
    else:
        data = str(body.get("content", "")).encode()
    obj = _state(request).add_file(
        str(body.get("filename", "seeded.txt")),
        data,
        str(body.get("purpose", "file-extract")),
        text=body.get("text"),
    )
    return JSONResponse(obj)


async def _control_file_bytes(request: Request) -> Response:
    stored = _state(request).get(request.path_params["file_id"])
    if stored is None:
        return _not_found()
    return Response(stored.data, media_type="application/octet-stream")


async def _control_configure(request: Request) -> Response:
    body = await _json_body(request)
    try:
        config = _state(request).configure(**body)
    except TypeError as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse(_config_json(config))


async def _control_reset(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"ok": True})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    type_ = "resource_not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return _error(exc.status_code, str(exc.detail), type_, headers=exc.headers)


# -- the /v1 gate: delays, auth, injected faults, the request log -----------------------------


class _Gate:
    def __init__(self, app: ASGIApp, state: ProviderState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        state = self.state
        method = scope["method"]
        generation = state.generation()
        scope["provider.generation"] = generation

        held = state.take_delay(method, path, answer=True)

        async def logged_send(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                if held > 0:
                    with contextlib.suppress(_Aborted):
                        await state.sleep(held, generation)
                # Logged before the client can see the response, so counters are settled
                # by the time a request returns.
                state.record(method, path, message["status"], generation)
            await send(message)

        delay = state.take_delay(method, path)
        if delay > 0:
            try:
                await state.sleep(delay, generation)
            except _Aborted:
                response: Response = _error(503, "server reset", "server_error")
                await response(scope, receive, send)  # not logged: it belongs to no test
                return

        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth != f"Bearer {state.config.api_key}":
            response = _error(401, "Invalid Authentication", "invalid_authentication_error")
            await response(scope, receive, logged_send)
            return

        fault = state.take_fault(method, path)
        if fault is not None:
            await _fault_response(fault)(scope, receive, logged_send)
            return
        await self.app(scope, receive, logged_send)


def build_app(state: ProviderState) -> ASGIApp:
    """The ASGI app for ``state`` (usable without a socket, e.g. with ``ASGITransport``)."""
    routes = [
        Route("/v1/files", _upload, methods=["POST"]),
        Route("/v1/files", _list, methods=["GET"]),
        Route("/v1/files/{file_id}", _retrieve, methods=["GET"]),
        Route("/v1/files/{file_id}", _delete, methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", _content, methods=["GET"]),
        Route("/v1/chat/completions", _chat, methods=["POST"]),
        *uploads_routes(state),
        Route("/_control/stats", _control_stats, methods=["GET"]),
        Route("/_control/request_count", _control_request_count, methods=["GET"]),
        Route("/_control/fail_next", _control_fail_next, methods=["POST"]),
        Route("/_control/delay", _control_delay, methods=["POST"]),
        Route("/_control/forget", _control_forget, methods=["POST"]),
        Route("/_control/seed", _control_seed, methods=["POST"]),
        Route("/_control/files/{file_id}/bytes", _control_file_bytes, methods=["GET"]),
        Route("/_control/configure", _control_configure, methods=["POST"]),
        Route("/_control/reset", _control_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.provider = state
    return _Gate(app, state)


# -- running it -----------------------------------------------------------------------------


class ProviderServer:
    """The provider on ``127.0.0.1`` and a free port, served by uvicorn in a thread.

    ``with ProviderServer(api_key="k") as server: OpenAI(api_key="k", base_url=server.base_url)``
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        returns_content: bool = True,
        allowed_purposes: Iterable[str] = DEFAULT_PURPOSES,
        max_file_bytes: int = 100 * MB,
        max_files: int = 1000,
        max_total_bytes: int = 10 * GB,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = ProviderState(
            ProviderConfig(
                api_key=api_key,
                returns_content=returns_content,
                allowed_purposes=frozenset(allowed_purposes),
                max_file_bytes=max_file_bytes,
                max_files=max_files,
                max_total_bytes=max_total_bytes,
            )
        )
        self.app = build_app(self.state)
        self._serving = UvicornThread(self.app, "provider-server", host=host, port=port)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        self.state.stopping.clear()
        self._serving.start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.state.stopping.set()  # wakes requests sleeping in an injected delay
        self._serving.stop(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._serving.running

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the control API is under ``url + "/_control"``)."""
        return self._serving.url

    @property
    def base_url(self) -> str:
        """What the ``openai`` SDK takes as ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    @property
    def control_url(self) -> str:
        return f"{self.url}/_control"

    @property
    def api_key(self) -> str:
        return self.state.config.api_key

    # -- configuration and fault injection ------------------------------------------------

    def configure(self, **changes: Any) -> ProviderConfig:
        """Change any :class:`ProviderConfig` field (``max_files=2``, ``returns_content=False``)."""
        return self.state.configure(**changes)

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``count`` authorized ``/v1`` requests matching the filters get ``status``."""
        self.state.fail_next(
            count, status, retry_after, path_contains, method=method, message=message
        )

    def set_delay(
        self,
        seconds: float,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        count: int | None = None,
        answer: bool = False,
    ) -> None:
        """Delay matching ``/v1`` requests (``count`` of them, or all); ``0`` clears the rule.
        ``answer``: handle the request at once and hold its answer instead."""
        self.state.set_delay(seconds, path_contains, method=method, count=count, answer=answer)

    @property
    def delay_seconds(self) -> float:
        """The delay applied to every ``/v1`` request (``set_delay`` for finer rules)."""
        return self.state.global_delay()

    @delay_seconds.setter
    def delay_seconds(self, seconds: float) -> None:
        self.state.set_delay(seconds)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the provider's clock (files past expires_after go)."""
        self.state.advance(seconds)

    @property
    def uploads(self) -> UploadsState:
        """The multipart Uploads API's state: parts seen, parts in flight, statuses."""
        return self.state.uploads

    def forget(self, file_id: str) -> bool:
        """Delete a file on the provider side (expiry, console deletion): later 404s."""
        return self.state.remove(file_id)

    def seed_file(
        self,
        filename: str,
        data: bytes,
        purpose: str = "file-extract",
        *,
        text: str | None = None,
    ) -> dict[str, Any]:
        """A file present at the provider that nobody uploaded through the API here.

        ``text`` overrides the extracted text ``/content`` answers. Not counted as an upload.
        """
        return self.state.add_file(filename, data, purpose, text=text)

    def reset(self) -> None:
        """Forget files, counters, logs, faults and delays; restore the constructor config.

        Requests still sleeping in an injected delay are answered 503 and not logged.
        """
        self.state.reset()

    # -- observation ----------------------------------------------------------------------

    @property
    def upload_count(self) -> int:
        """Successful ``POST /v1/files``."""
        return self.state.upload_count

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        """Logged ``/v1`` requests (any status); ``"/files"`` means ``"/v1/files"``."""
        return self.state.request_count(method, path_prefix)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every ``/v1`` request answered, in order."""
        return self.state.requests

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """File id -> file object, for the files the provider holds now."""
        return {obj["id"]: obj for obj in self.state.file_objects()}

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes the provider received for ``file_id`` (``KeyError`` if it has none)."""
        return self.state.file_bytes(file_id)

    @property
    def file_ids(self) -> list[str]:
        """The ids of the files the provider holds now (as every loopback server names them)."""
        return [obj["id"] for obj in self.state.file_objects()]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON body of every accepted ``POST /v1/chat/completions``."""
        return self.state.chat_requests

    def stats(self) -> dict[str, Any]:
        return self.state.stats()


class ProviderControl:
    """The ``/_control`` API from another process: ``ProviderControl(server.url)``."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        url = url.rstrip("/")
        for suffix in ("/v1", "/_control"):
            url = url.removesuffix(suffix)
        self._client = httpx.Client(base_url=f"{url}/_control", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._client.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        message: str | None = None,
    ) -> None:
        self._post(
            "/fail_next",
            {
                "count": count,
                "status": status,
                "retry_after": retry_after,
                "path_contains": path_contains,
                "method": method,
                "message": message,
            },
        )

    def set_delay(
        self,
        seconds: float,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        count: int | None = None,
    ) -> None:
        body = {"seconds": seconds, "path_contains": path_contains, "method": method}
        self._post("/delay", {**body, "count": count})

    def forget(self, file_id: str) -> bool:
        return bool(self._post("/forget", {"file_id": file_id})["forgotten"])

    def seed_file(
        self, filename: str, data: bytes, purpose: str = "file-extract", *, text: str | None = None
    ) -> dict[str, Any]:
        body = {"filename": filename, "content_b64": base64.b64encode(data).decode()}
        result: dict[str, Any] = self._post("/seed", {**body, "purpose": purpose, "text": text})
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        if "allowed_purposes" in changes:
            changes["allowed_purposes"] = sorted(changes["allowed_purposes"])
        result: dict[str, Any] = self._post("/configure", changes)
        return result

    def reset(self) -> None:
        self._post("/reset", {})

    def stats(self) -> dict[str, Any]:
        response = self._client.get("/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        params = {"path_prefix": path_prefix} | ({"method": method} if method else {})
        response = self._client.get("/request_count", params=params)
        response.raise_for_status()
        return int(response.json()["count"])

    def file_bytes(self, file_id: str) -> bytes:
        response = self._client.get(f"/files/{file_id}/bytes")
        response.raise_for_status()
        return response.content


def main(argv: list[str] | None = None) -> None:
    """``python -m testbed.provider_server [--port N] [--api-key K]``: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--no-content", action="store_true", help="refuse GET /files/{id}/content")
    args = parser.parse_args(argv)
    server = ProviderServer(args.api_key, returns_content=not args.no_content, port=args.port)
    with server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.running:
                time.sleep(0.5)


if __name__ == "__main__":
    main()
