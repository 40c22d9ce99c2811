"""filetier: a content-addressed, three-tier file store for LLM agents.

>>> async with FileStore() as store:
...     uploaded = await store.upload_file("report.pdf")
...     path = await store.download_file(uploaded.file_id)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from filetier.errors import (
    ConfigError,
    DestinationExistsError,
    FiletierError,
    FileTooLargeError,
    InsufficientSpaceError,
    IntegrityError,
    InvalidFileIdError,
    InvalidInputError,
    InvalidMetadataError,
    LimitExceededError,
    MetadataUnavailableError,
    NotFoundError,
    ObjectMissing,
    OriginalNotAvailableError,
    PathNotAllowedError,
    ProviderAuthError,
    ProviderError,
    ProviderInputError,
    ProviderLimitError,
    ProviderNotConfiguredError,
    ProviderRateLimitedError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QuotaExceededError,
    SourceNotAFileError,
    SourceNotFoundError,
    StorageRefusedError,
    StorageUnavailableError,
    StoreBusyError,
    StoreClosedError,
    TypeNotAllowedError,
    UnknownProviderError,
    UnsupportedPurposeError,
)

if TYPE_CHECKING:
    from filetier.config import Settings
    from filetier.models import (
        BatchItem,
        DeleteResult,
        DownloadEvent,
        DownloadResult,
        FilePage,
        FileRecord,
        Finding,
        MaintenanceReport,
        PlannedAction,
        StoreStats,
        UploadResult,
        VerifyReport,
    )
    from filetier.store import FileReader, FileStore, UnifiedFileHandler

# Loaded on first use (PEP 562): the store pulls in SQLAlchemy, pydantic and the object
# store client, ~0.5 s that a `filetier --help` or an import of the errors alone must not
# pay. The errors above are plain classes and stay eager.
_LAZY = {
    "Settings": "filetier.config",
    **dict.fromkeys(
        (
            "BatchItem",
            "DeleteResult",
            "DownloadEvent",
            "DownloadResult",
            "FilePage",
            "FileRecord",
            "Finding",
            "MaintenanceReport",
            "PlannedAction",
            "StoreStats",
            "UploadResult",
            "VerifyReport",
        ),
        "filetier.models",
    ),
    **dict.fromkeys(("FileReader", "FileStore", "UnifiedFileHandler"), "filetier.store"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'filetier' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# The one version string: pyproject.toml reads it from here (``dynamic = ["version"]``),
# and the CLI's --version, the HTTP API, its OpenAPI document and the MCP server info
# all show this name.
__version__ = "0.1.0"

__all__ = [
    "BatchItem",
    "ConfigError",
    "DeleteResult",
    "DestinationExistsError",
    "DownloadEvent",
    "DownloadResult",
    "FilePage",
    "FileReader",
    "FileRecord",
    "FileStore",
    "FileTooLargeError",
    "FiletierError",
    "Finding",
    "InsufficientSpaceError",
    "IntegrityError",
    "InvalidFileIdError",
    "InvalidInputError",
    "InvalidMetadataError",
    "LimitExceededError",
    "MaintenanceReport",
    "MetadataUnavailableError",
    "NotFoundError",
    "ObjectMissing",
    "OriginalNotAvailableError",
    "PathNotAllowedError",
    "PlannedAction",
    "ProviderAuthError",
    "ProviderError",
    "ProviderInputError",
    "ProviderLimitError",
    "ProviderNotConfiguredError",
    "ProviderRateLimitedError",
    "ProviderRequestError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "Settings",
    "SourceNotAFileError",
    "SourceNotFoundError",
    "StorageRefusedError",
    "StorageUnavailableError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreStats",
    "TypeNotAllowedError",
    "UnifiedFileHandler",
    "UnknownProviderError",
    "UnsupportedPurposeError",
    "UploadResult",
    "VerifyReport",
    "__version__",
]
