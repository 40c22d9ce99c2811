"""Log lines that user input cannot forge.

File names, paths and error messages reach the log, and some of them are chosen by a
client: a file named ``x\\n127.0.0.1 - "DELETE /v1/files/... HTTP/1.1" 204`` would, written
as is, add a line that never happened. :class:`EscapeControls`, a filter on every handler
filetier configures (``filetier serve``, the CLI, stdio MCP), rewrites each record so that
control characters (C0, DEL, C1: newlines, carriage returns, terminal escapes) and Unicode
line separators appear escaped (``\\n``, ``\\x1b``, ``\\u2028``): one record, one line.

Download links are capabilities: whoever holds ``/links/<id>.<signature>`` reads the
file, without a token. The access log keeps the link's id (to tell links apart) and drops
its signature, so the log never holds a live link.

Tracebacks are left as they are: they span lines by nature, and come from the code.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# uvicorn's access formatter reads the request's parts from ``record.args``, so its records
# keep their arguments (each escaped) instead of being collapsed into one message.
_KEEP_ARGS = frozenset({"uvicorn.access"})


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def escape_controls(text: str) -> str:
    """``text`` with every control character and line separator written as an escape."""
    return _CONTROL.sub(_escaped, text)


# A served link's path: /links/<id>.<signature>, the signature up to a query or the end.
_LINK_PATH = re.compile(r"(/links/[^/?.\s]*)\.[^/?\s]*")


def _escape_arg(value: object) -> object:
    if not isinstance(value, str):
        return value
    return escape_controls(_LINK_PATH.sub(r"\1.…", value))


class EscapeControls(logging.Filter):
    """Escapes control characters in each record's message, and drops the signatures of
    download links from access-log paths (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in _KEEP_ARGS and isinstance(record.args, tuple):
            record.args = tuple(_escape_arg(arg) for arg in record.args)
            if isinstance(record.msg, str):
                record.msg = escape_controls(record.msg)
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: logging reports it itself
        record.msg = escape_controls(message)
        record.args = None
        return True


def install(handler: logging.Handler) -> None:
    """Add the filter to ``handler`` once."""
    if not any(isinstance(f, EscapeControls) for f in handler.filters):
        handler.addFilter(EscapeControls())


def install_on_root() -> None:
    """Add the filter to every handler of the root logger (after ``basicConfig``)."""
    for handler in logging.getLogger().handlers:
        install(handler)


__all__ = ["EscapeControls", "escape_controls", "install", "install_on_root"]
