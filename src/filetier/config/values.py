"""Parsing helpers of the settings: sizes, environment names, database URLs, masking.

Nothing here knows the ``Settings`` class; the field groups and ``Settings`` use these.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, ByteSize, TypeAdapter, ValidationError

from filetier.errors import ConfigError

# pydantic's ByteSize parses sizes: plain bytes, or a decimal or binary suffix
# (``64MiB``, ``2GB``, ``10k``); a bad value becomes a ConfigError naming the forms.
_BYTE_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


_SIZE_TEXT = re.compile(r"\s*\d*\.?\d+\s*[A-Za-z]*\s*", re.ASCII)


def parse_size(value: object) -> int:
    """``"64MiB"`` -> 67108864; ints pass through. Raises ConfigError on nonsense."""
    if isinstance(value, bool):  # ByteSize would take True as 1 byte
        raise ConfigError(f"not a size: {value!r}")
    # ByteSize matches only a prefix ("5 MiB extra" read as 5 MiB): the whole text must be
    # a number and at most a unit.
    if isinstance(value, str) and not _SIZE_TEXT.fullmatch(value):
        raise ConfigError(f"not a size: {value!r} (use bytes or a suffix such as 64MiB, 2GB)")
    try:
        return int(_BYTE_SIZE.validate_python(value))
    except ValidationError:
        raise ConfigError(
            f"not a size: {value!r} (use bytes or a suffix such as 64MiB, 2GB)"
        ) from None


# The value stays a plain int: callers do arithmetic with it and pass it on.
Size = Annotated[int, BeforeValidator(parse_size)]


def env_names(*names: str) -> AliasChoices:
    """The documented environment names of a field (``FILETIER_*`` or a design name).

    Only these upper-case names are read from the environment and ``.env``; a lower-case
    field name given here is dropped, because pydantic-settings looks every alias up in the
    environment ignoring case (``home`` matched ``$HOME``). Python callers still write
    field names (``Settings(home=...)``): ``populate_by_name`` allows them.
    """
    return AliasChoices(*(name for name in names if name.isupper()))


def normalize_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs; pick the async driver."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


_SECRET_QUERY_KEYS = re.compile(
    r"([?&](?:password|sslpassword|passfile|token|secret|key|api_key|access_token)=)[^&]*",
    re.IGNORECASE,
)


def is_loopback(host: str) -> bool:
    """A literal loopback address or ``localhost`` (no name is resolved here)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mask_url(url: str) -> str:
    """Hide the secrets of a URL: ``postgresql://u:****@host/db?password=****``.

    The password may itself contain ``@`` or ``/``: the user info runs to the last ``@``
    before the query string."""
    scheme, sep, rest = url.partition("://")
    if sep:
        before_query, qsep, query = rest.partition("?")
        userinfo, at, hostpart = before_query.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            rest = f"{user}:****@{hostpart}{qsep}{query}"
        url = f"{scheme}://{rest}"
    return _SECRET_QUERY_KEYS.sub(r"\1****", url)
