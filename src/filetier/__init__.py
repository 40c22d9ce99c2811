"""filetier: a content-addressed, three-tier file store for LLM agents.

>>> async with FileStore() as store:
...     uploaded = await store.upload_file("report.pdf")
...     path = await store.download_file(uploaded.file_id)
"""

from filetier.config import Settings
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
    PathNotAllowedError,
    QuotaExceededError,
    SourceNotFoundError,
    StorageRefusedError,
    StorageUnavailableError,
    StoreBusyError,
    StoreClosedError,
    TypeNotAllowedError,
)
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
    "PathNotAllowedError",
    "PlannedAction",
    "QuotaExceededError",
    "Settings",
    "SourceNotFoundError",
    "StorageRefusedError",
    "StorageUnavailableError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreStats",
    "TypeNotAllowedError",
    "UnifiedFileHandler",
    "UploadResult",
    "VerifyReport",
    "__version__",
]
