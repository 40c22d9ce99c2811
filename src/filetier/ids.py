"""What names a file and an owner: file ids, id prefixes, owner names.

The one place each is checked and each refusal is worded, in the standard library only:
the store (:mod:`filetier.core`, :mod:`filetier.catalog`, :mod:`filetier.tokens`) and the
CLI's quick path (:mod:`filetier.interfaces.cli.quick`, which must not load SQLAlchemy)
give the same answer to the same text.
"""

from __future__ import annotations

import re
from uuid import UUID

from filetier.errors import InvalidFileIdError, InvalidInputError, NotFoundError

#: Fewest hex digits an id prefix may have.
MIN_ID_PREFIX = 4
_HEX_RE = re.compile(r"[0-9a-f]+")
# What may be an id prefix on a command line (cased, dashes anywhere): it is looked up as one.
_PREFIX_LIKE_RE = re.compile(r"[0-9a-fA-F-]+")
#: Provider file ids look like ``file-abc123`` (OpenAI, Kimi) or other short tokens (GLM).
PROVIDER_FILE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{2,254}$")
# Owner names: printable, no surrounding spaces, and no ``:`` or ``,``, which separate
# FILETIER_API_TOKENS' ``owner:token`` pairs, so every owner can also be configured there.
_OWNER_RE = re.compile(r"[^\s:,\x00-\x1f\x7f](?:[^:,\x00-\x1f\x7f]{0,253}[^\s:,\x00-\x1f\x7f])?")


def parse_file_id(file_id: str | UUID) -> UUID:
    if isinstance(file_id, UUID):
        return file_id
    try:
        return UUID(str(file_id).strip())
    except (ValueError, AttributeError):
        shown = str(file_id)[:64]
        raise InvalidFileIdError(
            f"{shown!r} is not a file id (expected a UUID such as 0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f)"
        ) from None


def looks_like_prefix(text: str) -> bool:
    """Whether a command-line id that is no whole id is to be read as an id prefix."""
    return _PREFIX_LIKE_RE.fullmatch(text.strip()) is not None


def prefix_range(prefix: str) -> UUID | tuple[str, UUID, UUID]:
    """An id prefix as git takes a unique commit prefix: hex digits (dashes optional), at
    least :data:`MIN_ID_PREFIX` of them. A whole id comes back as it is; a shorter prefix
    as ``(text, low, high)``, the ids it covers, for :func:`one_match` to judge."""
    text = prefix.strip().lower()
    digits = text.replace("-", "")
    if not _HEX_RE.fullmatch(digits) or len(digits) > 32:
        raise InvalidFileIdError(
            f"{prefix[:64]!r} is not a file id or id prefix (hex digits, e.g. 0192b5e0)"
        )
    if len(digits) == 32:
        return UUID(digits)
    if len(digits) < MIN_ID_PREFIX:
        raise InvalidInputError(
            f"id prefix {text!r} is too short: give at least {MIN_ID_PREFIX} characters"
        )
    return text, UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))


def one_match(text: str, ids: list[UUID], count: int) -> UUID:
    """The one id a prefix ``text`` matched among ``count`` (``ids``: the first of them)."""
    if count == 0:
        raise NotFoundError(f"no file whose id starts with {text}")
    if count > 1:
        raise InvalidInputError(
            f"id prefix {text} is ambiguous: {count} files match; give more characters"
        )
    return ids[0]


def no_such_file(file_id: UUID) -> NotFoundError:
    """The answer for an id the owner has no file under (another owner's file included)."""
    return NotFoundError(f"no file with id {file_id}")


def check_owner_name(owner: str) -> str:
    """``owner`` if it can name an owner, else InvalidInputError (exit 2, HTTP 400)."""
    if not _OWNER_RE.fullmatch(owner):
        raise InvalidInputError(
            f"{owner[:64]!r} cannot name an owner: use 1-255 printable characters, no "
            "leading or trailing spaces, no ':' or ','"
        )
    return owner
