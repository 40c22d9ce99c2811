"""multipart/form-data bodies as the loopback providers parse them.

Parsed here rather than with ``python-multipart`` so the servers need nothing beyond
starlette and uvicorn; shared by the files API and OpenAI's Uploads API.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from email.message import Message

_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _disposition_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(value):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1]).replace("%22", '"')
        key = key.lower()
        if key.endswith("*"):  # RFC 5987: charset'lang'percent-encoded
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            params[key[:-1]] = urllib.parse.unquote(encoded, encoding=charset or "utf-8")
        else:
            params.setdefault(key, raw)
    return params


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return parts  # the closing delimiter
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed multipart part")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        params = _disposition_params(headers.get("content-disposition", ""))
        if "name" not in params:
            raise ValueError("multipart part without a name")
        parts.append(
            Part(params["name"], params.get("filename"), headers.get("content-type"), data)
        )
    raise ValueError("multipart body without a closing delimiter")
