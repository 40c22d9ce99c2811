"""``multipart/form-data`` uploads (browsers, ``curl -F``, ``requests``' ``files=``),
streamed: the file part's bytes go to the store as they arrive, never whole in memory.

The first part with a filename (or, without one, the first part named ``file``) is the
file; text fields before it are ignored. Its ``filename`` and ``Content-Type`` are what
the client declared: the name is recorded, the type is a hint the store checks against
the content (a part without a declared type, or ``application/octet-stream``, is typed
from its content alone). A second file part is refused: one request, one file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from filetier.errors import InvalidInputError
from filetier.interfaces.http.headers import latin1_to_text

ENVELOPE_ALLOWANCE = 64 * 1024  # boundaries and part headers, beyond the file's own limit
HEADERS_MAX = 16 * 1024  # of one part's headers


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, else None."""
    kind, options = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInputError("a multipart/form-data body needs a boundary parameter")
    return boundary


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytes = b""
    header_value: bytes = b""
    header_bytes: int = 0


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


class _Reader:
    """Feeds body chunks to the parser and hands out the file part's data."""

    def __init__(self, body: AsyncIterator[bytes], boundary: bytes) -> None:
        self._body = body
        self._part = _Part()
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._file_headers: dict[bytes, bytes] | None = None
        self._out: list[bytes] = []
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._begin,
                "on_header_field": self._field,
                "on_header_value": self._value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    # -- parser callbacks ---------------------------------------------------------------

    def _begin(self) -> None:
        self._part = _Part()

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._part.field_name += data[start:end]
        self._count(end - start)

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]
        self._count(end - start)

    def _count(self, size: int) -> None:
        self._part.header_bytes += size
        if self._part.header_bytes > HEADERS_MAX:
            raise InvalidInputError("a multipart part's headers are too large")

    def _header_end(self) -> None:
        part = self._part
        part.headers[part.field_name.strip().lower()] = part.header_value.strip()
        part.field_name, part.header_value = b"", b""

    def _headers_done(self) -> None:
        _kind, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        is_file = b"filename" in options or options.get(b"name") == b"file"
        if is_file and self._file_seen:
            raise InvalidInputError("send one file per multipart upload")
        if is_file:
            self._file_seen = True
            self._in_file = True
            self._file_headers = self._part.headers

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._out.append(data[start:end])

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True

    def _end(self) -> None:
        self._ended = True

    # -- reading ------------------------------------------------------------------------

    async def _feed(self) -> bool:
        """Parse the next body chunk; False at the end of the body."""
        chunk = await anext(self._body, None)
        if chunk is None:
            if not self._ended:
                raise InvalidInputError("the multipart body ended before its closing boundary")
            return False
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise InvalidInputError("the multipart/form-data body is malformed") from None
        return True

    async def file_part(self) -> FilePart:
        while self._file_headers is None:
            if not await self._feed():
                raise InvalidInputError(
                    "the multipart/form-data body has no file part (a part with a filename, "
                    "or one named 'file')"
                )
        headers = self._file_headers
        _kind, options = parse_options_header(headers.get(b"content-disposition", b""))
        raw_name = options.get(b"filename")
        name = latin1_to_text(raw_name.decode("latin-1")) if raw_name else None
        declared = headers.get(b"content-type")
        return FilePart(
            filename=name or None,
            content_type=declared.decode("latin-1").split(";", 1)[0].strip().lower()
            if declared
            else None,
            chunks=self._file_chunks(),
        )

    async def _file_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._out:
                data = b"".join(self._out)
                self._out.clear()
                if data:
                    yield data
            if self._file_done and not self._out:
                break
            if not await self._feed():
                break
        # The rest of the body is read too: a second file part or a broken envelope
        # fails the upload before it is acknowledged.
        while await self._feed():
            pass


async def read_file_part(body: AsyncIterator[bytes], boundary: bytes) -> FilePart:
    """The file part of a ``multipart/form-data`` body; its ``chunks`` stream its bytes."""
    return await _Reader(body, boundary).file_part()
