"""Header values built from user data: file names in ``Content-Disposition``, digests.

A file name is user input and ends up in a response header, so it is encoded as RFC 6266
and RFC 8187 (formerly 5987) describe, and nothing of it can break out of the header:

- ``filename="..."``: an ASCII fallback; quotes, backslashes, CR, LF, every control
  character and every non-ASCII character are removed or replaced;
- ``filename*=UTF-8''...``: the real name, percent-encoded (control characters dropped).
"""

from __future__ import annotations

import base64
import re
import unicodedata
from urllib.parse import quote, unquote

# RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" /
# "`" / "|" / "~". Everything else is percent-encoded.
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"
_FALLBACK_NAME = "download"


def _printable(name: str) -> str:
    """The name without control characters (C0, DEL, C1) or Unicode line separators."""
    return "".join(
        ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"}
    ).strip()


def ascii_fallback(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", _printable(name))
    kept = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue  # "é" -> "e" rather than "_"
        if ch in '"\\/':
            kept.append("_")
        elif " " <= ch <= "~":
            kept.append(ch)
        else:
            kept.append("_")
    return "".join(kept).strip() or _FALLBACK_NAME


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''percent-encoded``."""
    clean = _printable(name) or _FALLBACK_NAME
    fallback = ascii_fallback(clean)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != clean:
        value += f"; filename*=UTF-8''{quote(clean, safe=_ATTR_CHAR_SAFE)}"
    return value


_PARAM = re.compile(
    r';\s*(?P<key>[A-Za-z*]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^;\s]+))'
)


def filename_from_disposition(header: str | None) -> str | None:
    """The file name a client put in ``Content-Disposition`` (``filename*`` preferred)."""
    if not header:
        return None
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + header.split(";", 1)[1] if ";" in header else ""):
        quoted = match.group("quoted")
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("token")
        params[match.group("key").lower()] = value
    extended = params.get("filename*")
    if extended:
        charset, _, rest = extended.partition("'")
        _lang, _, encoded = rest.partition("'")
        if charset.lower() in {"utf-8", "iso-8859-1"} and encoded:
            return unquote(encoded, encoding=charset.lower(), errors="replace")
    return params.get("filename")


def latin1_to_text(value: str) -> str:
    """Header values reach ASGI as latin-1; a client that sent UTF-8 gets it back intact."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def repr_digest(sha256_hex: str) -> str:
    """``Repr-Digest`` (RFC 9530): ``sha-256=:<base64 of the digest>:``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"
