"""Every exception filetier raises, in one place.

Each class inherits from :class:`FiletierError` and from the nearest builtin, so a caller
can catch either the domain concept (``except filetier.NotFoundError``) or the generic
one (``except FileNotFoundError``)::

    FiletierError
    ├── ConfigError (ValueError)              settings that cannot work
    ├── StoreClosedError (RuntimeError)       used before ``async with`` or after it
    ├── InvalidInputError (ValueError)        the caller passed something malformed
    │   ├── InvalidFileIdError                not a UUID
    │   └── InvalidMetadataError              metadata is not a small JSON object
    ├── NotFoundError (FileNotFoundError)     no such file (for this owner)
    │   └── SourceNotFoundError               the upload source path does not exist
    │       └── SourceNotAFileError           it exists but is a directory or a device
    ├── ObjectMissing (FileNotFoundError)     a tier has no such object (internal)
    ├── PathNotAllowedError (PermissionError) destination escapes the allowed roots
    ├── DestinationExistsError (FileExistsError) a different file is already there
    ├── LimitExceededError (ValueError)       refused before anything was stored
    │   ├── FileTooLargeError                 over the overall or per-type size limit
    │   ├── QuotaExceededError                the owner's byte or file quota is full
    │   └── TypeNotAllowedError               the sniffed MIME type is refused
    ├── InsufficientSpaceError (OSError)      not enough free disk space
    ├── IntegrityError (OSError)              bytes do not match their SHA-256
    ├── StoreBusyError (TimeoutError)         a lock was not acquired in time
    ├── StorageUnavailableError (ConnectionError)   the primary object store failed
    │   └── StorageRefusedError               it answered and refused (settings): no retry
    ├── MetadataUnavailableError (ConnectionError)  the metadata database failed
    ├── OriginalNotAvailableError (FileNotFoundError) only a provider holds it, as text
    └── ProviderError                         an LLM provider's files API
        ├── ProviderNotConfiguredError (LookupError)   no API key for that provider
        │   └── UnknownProviderError (ValueError)      no provider of that name at all
        ├── ProviderAuthError (PermissionError)        the key was refused
        ├── UnsupportedPurposeError (ValueError)       purpose not offered by provider
        ├── ProviderLimitError (ValueError)            too large / quota, nothing sent
        ├── ProviderRequestError (ValueError)          any other refusal (4xx)
        │   └── ProviderInputError (InvalidInputError)  the caller's mistake (400/404/422)
        ├── ProviderRateLimitedError (ConnectionError) still 429 after bounded retries
        ├── ProviderUnavailableError (ConnectionError) 5xx or unreachable
        └── ProviderTimeoutError (TimeoutError)        no answer in time

Foreign exceptions (obstore, SQLAlchemy, OSError from the disk) are translated once, at
the boundary that calls the foreign library. :data:`ERROR_TABLE` gives every class its
own row with a column per interface: the HTTP status, the CLI exit code, the MCP tool
error's text, and whether a retry can help. The HTTP API, the web console, the CLI and
the MCP server look errors up there (:func:`mapping_for`, :func:`mcp_text`) and nowhere
else.

Every exit code the ``filetier`` command uses (the README's table repeats this)::

    0    success
    1    an unexpected error (a bug: the message names it; ``-v`` shows the traceback)
    2    bad input: a malformed id or argument, an unknown option or provider, a directory
         given where a file is expected, an ambiguous id prefix, a request a provider
         refused as malformed
    3    a setting is invalid or cannot work (ConfigError, or a malformed variable)
    4    not found: no such file for this owner, no such upload source, no such token
    5    a destination or source path outside the allowed roots
    6    a size, type, quota or provider limit refused the request
    7    not enough free disk space
    8    stored bytes failed their SHA-256 check
    9    a lock was not acquired in time
    10   the primary object store failed or refused
    11   the metadata database failed
    12   ``verify`` found problems it did not repair
    13   ``doctor``: a configured service does not answer
    14   a provider is named but has no API key configured
    15   a provider refused the key (or failed in another way)
    16   a provider kept answering 429
    17   a provider is unavailable or did not answer in time
    18   a different file is already at the download destination (``--force``)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

from typing import NamedTuple


class FiletierError(Exception):
    """Base of every error filetier raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(FiletierError, ValueError):
    """A setting has a value filetier cannot work with."""


class StoreClosedError(FiletierError, RuntimeError):
    """The FileStore is not open: use it inside ``async with FileStore(...)``."""


class InvalidInputError(FiletierError, ValueError):
    """The caller passed a malformed argument."""


class InvalidFileIdError(InvalidInputError):
    """A file id is not a UUID."""


class InvalidMetadataError(InvalidInputError):
    """User metadata is not a JSON object within the size and depth limits."""


class NotFoundError(FiletierError, FileNotFoundError):
    """No file with that id exists (or it belongs to another owner)."""


class ObjectMissing(FiletierError, FileNotFoundError):
    """An object store has no object at that key. Internal: tiers raise it, and the store
    turns it into :class:`NotFoundError` or :class:`IntegrityError` before callers see it."""


class SourceNotFoundError(NotFoundError):
    """The local path given as an upload source does not exist or is not a file."""


class SourceNotAFileError(SourceNotFoundError):
    """The upload source exists but is a directory, a FIFO or a device: bad input (exit 2),
    not "not found"."""


class PathNotAllowedError(FiletierError, PermissionError):
    """A destination path resolves outside every allowed root, or is unsafe."""


class DestinationExistsError(FiletierError, FileExistsError):
    """A delivery would replace a different existing file and the caller did not ask to
    overwrite it; the existing file is left as it was."""


class LimitExceededError(FiletierError, ValueError):
    """A configured limit refused the request before anything was stored."""


class FileTooLargeError(LimitExceededError):
    """The file is larger than the overall or per-type maximum size."""


class QuotaExceededError(LimitExceededError):
    """The owner's quota (bytes or files) would be exceeded."""


class TypeNotAllowedError(LimitExceededError):
    """The sniffed MIME type is not accepted by this store."""


class InsufficientSpaceError(FiletierError, OSError):
    """The target filesystem does not have room for the file plus the reserve."""


class IntegrityError(FiletierError, OSError):
    """Stored bytes do not match their SHA-256; the bad copy has been set aside."""


class StoreBusyError(FiletierError, TimeoutError):
    """A cross-task or cross-process lock could not be acquired in time."""


class StorageUnavailableError(FiletierError, ConnectionError):
    """The primary object store failed or could not be reached."""


class StorageRefusedError(StorageUnavailableError):
    """The object store answered and refused: a missing bucket, wrong credentials, or a
    request form it does not accept. Retrying cannot help; the settings must change."""


class MetadataUnavailableError(FiletierError, ConnectionError):
    """The metadata database failed or could not be reached.

    For an upload whose connection was lost after its commit was sent, the file may have
    been recorded all the same (PostgreSQL: the answer, not the commit, was lost): look
    for it (list by SHA-256) before uploading again, or accept a second record."""


class OriginalNotAvailableError(FiletierError, FileNotFoundError):
    """The original bytes are held only by a provider that returns extracted text."""


class ProviderError(FiletierError):
    """An LLM provider's files API failed or refused; the message names the provider."""


class ProviderNotConfiguredError(ProviderError, LookupError):
    """No API key (or no such provider) is configured."""


class UnknownProviderError(ProviderNotConfiguredError, ValueError):
    """No provider of that name exists: a typo, not a missing key (exit 2, not 14)."""


class ProviderAuthError(ProviderError, PermissionError):
    """The provider refused the API key."""


class UnsupportedPurposeError(ProviderError, ValueError):
    """The provider does not accept files for that purpose."""


class ProviderLimitError(ProviderError, ValueError):
    """The file is larger than the provider accepts, or its quota is full."""


class ProviderRequestError(ProviderError, ValueError):
    """The provider refused the request for another reason."""


class ProviderInputError(ProviderRequestError, InvalidInputError):
    """The provider refused the request as malformed or naming what it does not have
    (HTTP 400/404/422: an unknown model or file id). The caller's mistake: a retry cannot
    help, and interfaces answer it as bad input, not as a failing upstream.

    ``file_missing`` is True when the provider does not have the file the call named
    (404, or Gemini's 403 for an expired file): adapters turn it into None or False.
    """

    def __init__(self, message: str, *, file_missing: bool = False) -> None:
        super().__init__(message)
        self.file_missing = file_missing


class ProviderRateLimitedError(ProviderError, ConnectionError):
    """The provider kept answering 429 after bounded retries."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError, ConnectionError):
    """The provider answered 5xx or could not be reached."""


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The provider did not answer in time."""


# -- the one table every interface reads ----------------------------------------------------

MCP_TEXT = "Error executing tool {tool}: {message}"
"""How a tool error reads to the model: the tool and the error's own message, which is
written to say what to do next."""

MCP_RETRY_TEXT = MCP_TEXT + " (temporary: the same call may succeed later)"
"""The same for errors a retry can cure, so an agent knows to try again rather than to
change its call."""


class ErrorMapping(NamedTuple):
    """How one error class reaches each interface."""

    http_status: int
    exit_code: int
    retryable: bool
    """Whether the same request, unchanged, may succeed later (the cause is transient)."""
    mcp_text: str = MCP_TEXT
    """Template of the MCP tool error: ``{tool}`` and ``{message}`` are filled in."""


def _row(http_status: int, exit_code: int, *, retry: bool = False) -> ErrorMapping:
    return ErrorMapping(http_status, exit_code, retry, MCP_RETRY_TEXT if retry else MCP_TEXT)


# One row per class, ordered most specific first: the first ``isinstance`` match wins, so
# a subclass sits above its base. Columns: HTTP status, CLI exit code, retry can help (the
# MCP text follows from it). tests/test_errors.py checks that every class has its own row.
ERROR_TABLE: tuple[tuple[type[FiletierError], ErrorMapping], ...] = (
    # The caller's input: fix the call, a retry cannot help.
    (InvalidFileIdError, _row(400, 2)),
    (InvalidMetadataError, _row(400, 2)),
    (ProviderInputError, _row(400, 2)),  # before its bases: the caller's mistake
    (InvalidInputError, _row(400, 2)),
    (SourceNotAFileError, _row(400, 2)),
    (SourceNotFoundError, _row(400, 4)),
    (NotFoundError, _row(404, 4)),
    (ObjectMissing, _row(500, 1)),  # internal: the store translates it before callers
    (OriginalNotAvailableError, _row(409, 4)),
    (PathNotAllowedError, _row(403, 5)),
    (DestinationExistsError, _row(409, 18)),
    (FileTooLargeError, _row(413, 6)),
    (TypeNotAllowedError, _row(415, 6)),
    (QuotaExceededError, _row(413, 6)),
    (LimitExceededError, _row(422, 6)),
    # This host: settings or the machine must change.
    (ConfigError, _row(500, 3)),
    (StoreClosedError, _row(503, 1)),
    (InsufficientSpaceError, _row(507, 7)),
    (IntegrityError, _row(500, 8)),
    # Shared resources: busy or down now, likely fine later.
    (StoreBusyError, _row(503, 9, retry=True)),
    # Refused is listed before its base: the store answered, so only settings can help.
    (StorageRefusedError, _row(502, 10)),
    (StorageUnavailableError, _row(503, 10, retry=True)),
    (MetadataUnavailableError, _row(503, 11, retry=True)),
    # LLM providers. A request the provider refused as malformed (its 400/404/422) is the
    # caller's mistake (ProviderInputError, above); any other refusal is the provider's.
    (UnknownProviderError, _row(400, 2)),
    (ProviderNotConfiguredError, _row(400, 14)),
    (UnsupportedPurposeError, _row(400, 2)),
    (ProviderRequestError, _row(502, 15)),
    (ProviderLimitError, _row(413, 6)),
    (ProviderAuthError, _row(502, 15)),
    (ProviderRateLimitedError, _row(429, 16, retry=True)),
    (ProviderUnavailableError, _row(502, 17, retry=True)),
    (ProviderTimeoutError, _row(504, 17, retry=True)),
    (ProviderError, _row(502, 15)),
    (FiletierError, _row(500, 1)),
)


def mapping_for(error: FiletierError | type[FiletierError]) -> ErrorMapping:
    """The table's row for ``error`` (an instance or a class): its HTTP status, CLI exit
    code, whether a retry can help, and its MCP text."""
    cls = error if isinstance(error, type) else type(error)
    for known, mapping in ERROR_TABLE:
        if issubclass(cls, known):
            return mapping
    return _row(500, 1)  # pragma: no cover - FiletierError is the last row


def mcp_text(error: FiletierError, tool: str) -> str:
    """The text of the MCP tool error ``error`` becomes when ``tool`` raised it."""
    return mapping_for(error).mcp_text.format(tool=tool, message=error.message)
