"""Errors as HTTP answers: ``{"error": {"type": ..., "message": ...}}``, nothing more.

The status comes from :func:`filetier.errors.mapping_for` and nowhere else. Messages are
the domain errors' own text with this host's internal directories replaced by a neutral
name; unexpected exceptions become a bare 500 and are logged, never shown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from filetier.config import Settings
from filetier.errors import FiletierError, mapping_for

log = logging.getLogger("filetier.http")


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": kind, "message": message}}


def error_response(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(kind, message), status_code=status, headers=headers)


class Redactor:
    """Replaces this host's data directories in messages with ``<filetier>``."""

    def __init__(self, settings: Settings) -> None:
        roots = {settings.home, settings.cache_dir, settings.objects_dir, settings.downloads_dir}
        found: set[str] = set()
        for root in roots:
            for form in (root, root.expanduser()):
                found.add(str(form))
                with contextlib.suppress(OSError):
                    found.add(str(form.resolve()))
        # Longest first, so a nested directory is not half-replaced by its parent.
        self._roots = sorted((r for r in found if len(r) > 1), key=len, reverse=True)

    def __call__(self, message: str) -> str:
        for root in self._roots:
            message = message.replace(root, "<filetier>")
        return message


def filetier_error_response(error: FiletierError, redact: Redactor) -> JSONResponse:
    status = mapping_for(error).http_status
    if status >= 500:
        log.warning("%s: %s", type(error).__name__, redact(error.message))
    return error_response(status, type(error).__name__, redact(error.message))


async def on_filetier_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FiletierError)
    redact: Redactor = request.app.state.redact
    return filetier_error_response(exc, redact)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kinds = {404: "NotFound", 405: "MethodNotAllowed"}
    kind = kinds.get(exc.status_code, "HTTPError")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=headers)
    return error_response(exc.status_code, kind, str(exc.detail), headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (stderr) by Starlette's ServerErrorMiddleware, which
    # re-raises after sending this answer; the client learns nothing of the internals.
    return error_response(500, "InternalError", "internal error; see the server log")
