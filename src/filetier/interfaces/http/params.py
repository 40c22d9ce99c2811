"""Reading a request's parameters and JSON body: what every /v1 endpoint shares.

Each function either returns the value or raises InvalidInputError, which the error
mapping turns into a 400: the routes themselves never build a 400 by hand.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from filetier.errors import InvalidInputError
from filetier.interfaces.http.runtime import Runtime

JSON_BODY_MAX = 256 * 1024


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,30}", raw.strip()):
        raise InvalidInputError(f"{name} must be an integer, not {raw[:40]!r}")
    value = int(raw)
    if value > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum}, not {value}")
    return value


def text_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise InvalidInputError(f"{name} must not contain a NUL character")
    return value or None


def loads_json(text: str | bytes | bytearray, what: str) -> Any:
    """Parse JSON a client sent: every way it can fail is the client's 400.

    Nesting deeper than the interpreter's recursion limit (``[[[[...]]]]``, a few KiB)
    makes ``json`` raise RecursionError rather than ValueError; nothing this API takes
    is nested more than a few levels, so it is refused the same way as other bad JSON.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInputError(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"{what} is not valid JSON") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > JSON_BODY_MAX:
            raise InvalidInputError(f"the JSON body is larger than {JSON_BODY_MAX:,} bytes")
    value = loads_json(body, "the request body")
    if not isinstance(value, dict):
        raise InvalidInputError("the request body must be a JSON object")
    require_unicode(value, "the request body")
    return value


def require_unicode(value: object, what: str) -> None:
    """JSON may escape lone UTF-16 surrogates (``"\\ud800"``): no valid text has them."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} contains invalid Unicode (a lone surrogate)") from None


def only_params(request: Request, *allowed: str) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise InvalidInputError(f"unknown query parameter(s): {shown}")


def check_keys(body: dict[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInputError(f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise InvalidInputError(f"missing field(s): {', '.join(missing)}")
