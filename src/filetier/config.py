"""Settings: built once at the edge (CLI, server, test), then passed down.

Nothing here reads the environment at import time; ``Settings()`` reads it when called.
A field ``x`` is read from ``FILETIER_X`` (pydantic-settings' ``env_prefix``); only names
outside that pattern carry an alias: the original design's (``FILE_CACHE_DIR``,
``MAX_MEMORY_CACHE_SIZE``, ``MAX_CACHE_SIZE_MB``, ``MAX_CACHE_AGE_DAYS``, ``SUPABASE_*``,
``DATABASE_URL``), the providers' own (``OPENAI_API_KEY``, ``KIMI_BASE_URL``, ...), and the
few fields whose attribute name is taken by their parsed value (``FILETIER_ALLOWED_ROOTS``). Sizes accept plain bytes or a suffix (``64MiB``, ``2GB``).
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import platformdirs
from pydantic import (
    AliasChoices,
    BeforeValidator,
    ByteSize,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from filetier.digest import mime_aliases
from filetier.errors import ConfigError

# pydantic's ByteSize parses sizes: plain bytes, or a decimal or binary suffix
# (``64MiB``, ``2GB``, ``10k``); a bad value becomes a ConfigError naming the forms.
_BYTE_SIZE: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


def parse_size(value: object) -> int:
    """``"64MiB"`` -> 67108864; ints pass through. Raises ConfigError on nonsense."""
    if isinstance(value, bool):  # ByteSize would take True as 1 byte
        raise ConfigError(f"not a size: {value!r}")
    try:
        return int(_BYTE_SIZE.validate_python(value))
    except ValidationError:
        raise ConfigError(
            f"not a size: {value!r} (use bytes or a suffix such as 64MiB, 2GB)"
        ) from None


# The value stays a plain int: callers do arithmetic with it and pass it on.
Size = Annotated[int, BeforeValidator(parse_size)]


def _env(*names: str) -> AliasChoices:
    """The documented environment names of a field (``FILETIER_*`` or a design name).

    Only these upper-case names are read from the environment and ``.env``; a lower-case
    field name given here is dropped, because pydantic-settings looks every alias up in the
    environment ignoring case (``home`` matched ``$HOME``). Python callers still write
    field names (``Settings(home=...)``): ``populate_by_name`` allows them.
    """
    return AliasChoices(*(name for name in names if name.isupper()))


# Python-only spellings of fields whose attribute name is taken by the parsed value
# (``settings.allowed_roots`` is a tuple of paths): ``Settings(allowed_roots="a:b")``.
# They are renamed in __init__, never looked up in the environment, so ``CACHE_DIR`` or
# ``ALLOWED_ROOTS`` in a user's shell changes nothing.
_PYTHON_NAMES = {
    "cache_dir": "cache_dir_override",
    "database_url": "database_url_override",
    "allowed_roots": "allowed_roots_raw",
    "type_limits": "type_limits_raw",
    "provider_limits": "provider_limits_raw",
    "allowed_hosts": "allowed_hosts_raw",
    "supabase_project_ref": "supabase_project_ref_override",
}


class Settings(BaseSettings):
    """The effective configuration of one filetier process."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # populate_by_name lets Python pass field names; pydantic-settings then also looks
        # the field name up in the environment, with env_prefix in front of it. The prefix
        # keeps that lookup inside filetier's namespace: with no prefix, ``home`` matched
        # ``$HOME`` (lookups ignore case) and the data dir became the user's home.
        populate_by_name=True,
        env_prefix="FILETIER_",
        frozen=True,
    )

    def __init__(self, **values: Any) -> None:
        for public, field in _PYTHON_NAMES.items():
            if public in values:
                values[field] = values.pop(public)
        super().__init__(**values)

    home: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("filetier"),
        description="Data directory: SQLite database, local primary store, downloads.",
    )
    cache_dir_override: Path | None = Field(
        default=None,
        validation_alias=_env("FILE_CACHE_DIR", "cache_dir"),
        description="Disk cache directory (default: <home>/cache).",
    )
    database_url_override: SecretStr | None = Field(
        default=None,
        validation_alias=_env("FILETIER_DATABASE_URL"),
        description="SQLAlchemy URL of the metadata database (default: SQLite in home).",
    )
    shared_database_url: SecretStr | None = Field(
        default=None,
        validation_alias=_env("DATABASE_URL"),
        description="The generic DATABASE_URL, used when FILETIER_DATABASE_URL is unset; "
        "filetier adds its tables there only to an empty database or one already filetier's.",
    )
    database_schema: str = Field(
        default="filetier",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema holding filetier's tables and its Alembic version table.",
    )
    primary_url: str | None = Field(
        default=None,
        description="Primary store: unset = <home>/objects; memory:// ; file:///dir.",
    )
    max_memory_cache_size: Size = Field(
        default=104_857_600,
        validation_alias=_env("MAX_MEMORY_CACHE_SIZE", "max_memory_cache_size"),
        description="Memory tier capacity in bytes.",
    )
    memory_item_max_bytes: Size = Field(
        default=4 * 1024 * 1024,
        description="Files larger than this never enter the memory tier.",
    )
    max_cache_size_mb: int = Field(
        default=1000,
        validation_alias=_env("MAX_CACHE_SIZE_MB", "max_cache_size_mb"),
        description="Disk cache capacity in MB (10^6 bytes).",
    )
    max_cache_age_days: float = Field(
        default=30,
        validation_alias=_env("MAX_CACHE_AGE_DAYS", "max_cache_age_days"),
        description="Disk cache entries unused for longer are evicted by cleanup.",
    )
    allowed_roots_raw: str | None = Field(
        default=None,
        validation_alias=_env("FILETIER_ALLOWED_ROOTS", "allowed_roots"),
        description="Download destinations allowed, separated by os.pathsep.",
    )
    max_file_size: Size = Field(
        default=5 * 1024**3,
        description="Largest file accepted, in bytes.",
    )
    type_limits_raw: str = Field(
        default="",
        validation_alias=_env("FILETIER_TYPE_LIMITS", "type_limits"),
        description="Per-MIME size limits, e.g. 'image/*=20MiB,application/x-dosexec=0' "
        "(0 refuses the type).",
    )
    min_free_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Free space kept in reserve on every filesystem filetier writes to.",
    )
    delivery_retention_hours: float = Field(
        default=24,
        description="How long copies delivered to the default downloads folder are kept.",
    )
    gc_grace_seconds: float = Field(
        default=3600,
        description="Unreferenced objects younger than this are never collected.",
    )
    lock_timeout_seconds: float = Field(
        default=60,
        description="Longest wait for a cross-process lock before giving up on it.",
    )
    record_cache_ttl_seconds: float = Field(
        default=5,
        description="How long a file record read from the database is reused in memory.",
    )
    fsync: bool = Field(
        default=True,
        description=(
            "Make every upload durable before it is acknowledged: its object, directories "
            "and database row (uploads arriving together share one sync)."
        ),
    )
    owner: str = Field(
        default="default",
        description="Owner (namespace) of files created by this process.",
    )
    bookkeeping_flush_seconds: float = Field(
        default=1.0,
        description="How often batched access counters and history are written.",
    )
    s3_bucket: str | None = Field(
        default=None,
        description="S3 bucket; when set, the S3 store is the primary.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="S3-compatible endpoint URL (default: derived from SUPABASE_URL, else AWS).",
    )
    s3_region: str | None = Field(
        default=None,
        description="S3 region name (default: us-east-1; for Supabase learned from the server "
        "where it says; any name works for Ceph RGW and MinIO).",
    )
    s3_access_key_id: str | None = Field(
        default=None,
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
    )
    s3_path_style: bool = Field(
        default=True,
        description="Path-style requests (Supabase, Ceph RGW, MinIO need them).",
    )
    s3_sign_payload: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "Sign request bodies (SigV4 payload hash): 'auto' signs over plain HTTP to "
            "another host and not over HTTPS (TLS already checks every byte, as AWS's own "
            "SDKs decide) or on loopback (no wire); 'always' or 'never' force it."
        ),
    )
    s3_prefix: str = Field(
        default="",
        description="Key prefix inside the bucket, e.g. 'filetier/'.",
    )
    storage_timeout_seconds: float = Field(
        default=60,
        description="Timeout of one object-store request.",
    )
    storage_connect_timeout_seconds: float = Field(
        default=5,
        description="Timeout for connecting to the object store.",
    )
    storage_retry_attempts: int = Field(
        default=4,
        description="Attempts per object-store write (backoff with jitter between them).",
    )
    storage_retry_timeout_seconds: float = Field(
        default=30,
        description="Longest time spent retrying one object-store write.",
    )
    database_timeout_seconds: float = Field(
        default=10,
        description="Connect and statement timeout for the metadata database.",
    )
    kimi_api_key: SecretStr | None = Field(default=None, validation_alias=_env("KIMI_API_KEY"))
    kimi_base_url: str = Field(
        default="https://api.moonshot.ai/v1",
        validation_alias=_env("KIMI_BASE_URL", "kimi_base_url"),
        description="Moonshot Kimi API (https://api.moonshot.cn/v1 in mainland China).",
    )
    kimi_model: str = Field(
        default="moonshot-v1-128k",
    )
    glm_api_key: SecretStr | None = Field(default=None, validation_alias=_env("GLM_API_KEY"))
    glm_base_url: str = Field(
        default="https://open.bigmodel.cn/api/paas/v4",
        validation_alias=_env("GLM_BASE_URL", "glm_base_url"),
        description="Zhipu BigModel API (https://api.z.ai/api/paas/v4 for Z.ai).",
    )
    glm_model: str = Field(
        default="glm-4-long",
    )
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=_env("OPENAI_BASE_URL", "openai_base_url"),
        description="Any OpenAI-compatible files API.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
    )
    openai_expires_after_seconds: int | None = Field(
        default=None,
        ge=3600,
        le=30 * 24 * 3600,
        description="OpenAI deletes uploaded copies this long after creation (expires_after).",
    )
    openai_uploads_threshold_bytes: Size = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="Files larger than this go to OpenAI through the multipart Uploads API.",
    )
    openai_upload_part_bytes: Size = Field(
        default=64 * 1024 * 1024,
        ge=1,
        le=64 * 1024 * 1024,
        description="Part size of an OpenAI multipart upload (64 MiB at most).",
    )
    openai_upload_parallel: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Parts of one OpenAI multipart upload in flight (and in memory) at once.",
    )
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("GEMINI_API_KEY", "gemini_api_key")
    )
    gemini_base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        validation_alias=_env("GEMINI_BASE_URL", "gemini_base_url"),
        description="Google Gemini API (the Files API lives under /v1beta and /upload/v1beta).",
    )
    gemini_model: str = Field(
        default="gemini-2.5-flash",
    )
    gemini_processing_timeout_seconds: float = Field(
        default=300,
        gt=0,
        description="Longest wait for an uploaded Gemini file to go from PROCESSING to ACTIVE.",
    )
    provider_reuse_margin_seconds: float = Field(
        default=3600,
        ge=0,
        description="A provider copy is reused only while it has more life left than this.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com",
        validation_alias=_env("ANTHROPIC_BASE_URL", "anthropic_base_url"),
        description="Anthropic API (the Files API lives under /v1/files).",
    )
    anthropic_model: str = Field(
        default="claude-sonnet-4-5",
    )
    anthropic_files_beta: bool = Field(
        default=False,
        description="Send 'anthropic-beta: files-api-2025-04-14' (deployments that still need it).",
    )
    anthropic_file_ttl_seconds: int | None = Field(
        default=None,
        ge=3600,
        le=7776000,
        description="expires_in_seconds for Anthropic uploads (3600-7776000); unset = no expiry.",
    )
    mistral_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("MISTRAL_API_KEY")
    )
    mistral_base_url: str = Field(
        default="https://api.mistral.ai",
        validation_alias=_env("MISTRAL_BASE_URL", "mistral_base_url"),
        description="Mistral API (the files API lives under /v1/files).",
    )
    mistral_model: str = Field(
        default="mistral-small-latest",
    )
    provider_timeout_seconds: float = Field(
        default=60,
        description="Timeout of one provider request.",
    )
    provider_retry_attempts: int = Field(
        default=4,
        description="Attempts per provider call on 429/5xx/timeouts (Retry-After honoured).",
    )
    provider_max_retry_wait_seconds: float = Field(
        default=30,
        description="Longest total wait between retries of one provider call.",
    )
    provider_limits_raw: str = Field(
        default="",
        validation_alias=_env("FILETIER_PROVIDER_LIMITS", "provider_limits"),
        description="Override provider quotas, e.g. 'kimi.max_files=500,kimi.max_total_bytes=5GB'.",
    )
    owner_quota_bytes: Size | None = Field(
        default=None,
        description="Most bytes one owner may store (sum of file sizes); unset = no limit.",
    )
    owner_quota_files: int | None = Field(
        default=None,
        description="Most files one owner may store; unset = no limit.",
    )
    api_tokens: SecretStr | None = Field(
        default=None,
        description="HTTP/MCP bearer tokens as comma-separated owner:token pairs.",
    )
    http_host: str = Field(
        default="127.0.0.1",
    )
    http_port: int = Field(
        default=8787,
    )
    verified_copy_seconds: float = Field(
        default=300.0,
        ge=0,
        description="HTTP downloads: a local copy hashed in full is served again without "
        "re-hashing for this many seconds while unchanged; 0 hashes every download.",
    )
    http_head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this many seconds (else 408); "
        "also the grace period before the body rate is checked.",
    )
    http_min_body_rate: Size = Field(
        default=1024,
        description="Slowest average request-body rate, bytes per second, before a "
        "connection is closed (slow-loris defence).",
    )
    http_min_response_rate: Size = Field(
        default=1024,
        description="Slowest rate, bytes per second over any FILETIER_HTTP_HEAD_TIMEOUT_SECONDS "
        "stretch, at which a client that holds up a response must read it before its "
        "connection is closed.",
    )
    http_max_connections: int = Field(
        default=256,
        ge=1,
        description="Most open HTTP connections (and requests in progress); requests beyond "
        "are answered 503.",
    )
    http_read_ahead_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Most bytes all downloads together may read ahead of what their clients "
        "have taken.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (16+ characters) that may read /metrics and nothing else; "
        "the operator's API token (owner FILETIER_OWNER) may read it too.",
    )
    allow_no_auth: bool = Field(
        default=False,
        description="Serve without tokens (honoured only when bound to loopback).",
    )
    allowed_hosts_raw: str = Field(
        default="",
        validation_alias=_env("FILETIER_ALLOWED_HOSTS", "allowed_hosts"),
        description="Host headers accepted (DNS-rebinding protection); default: loopback names.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach this server at (e.g. https://files.example.com), "
        "used to build download links; default: the address the server is bound to.",
    )
    link_max_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="Longest lifetime, in seconds, a caller may give a download link.",
    )
    link_secret: SecretStr | None = Field(
        default=None,
        description="Key (32+ characters) that signs download links; the same on every host "
        "of a scaled-out deployment. Unset: generated once and kept 0600 in the data dir.",
    )
    inline_upload_max_bytes: Size = Field(
        default=1024 * 1024,
        description="Largest upload an MCP tool accepts inline (text or base64).",
    )
    supabase_url: str | None = Field(default=None, validation_alias=_env("SUPABASE_URL"))
    supabase_key: SecretStr | None = Field(default=None, validation_alias=_env("SUPABASE_KEY"))
    supabase_service_key: SecretStr | None = Field(
        default=None, validation_alias=_env("SUPABASE_SERVICE_KEY")
    )
    supabase_project_ref_override: str | None = Field(
        default=None,
        validation_alias=_env("FILETIER_SUPABASE_PROJECT_REF", "supabase_project_ref"),
        description="Supabase project ref (the S3 session-token form's key id); default: from "
        "a hosted SUPABASE_URL, else the `ref` claim of SUPABASE_KEY / SUPABASE_SERVICE_KEY.",
    )

    @field_validator("supabase_url", "supabase_key", "supabase_service_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `SUPABASE_SERVICE_KEY=` in a .env means "not set", not "an empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field`` (messages name what a user sets);
        a name that is no field (already a variable's) is returned as it is."""
        info = cls.model_fields.get(field)
        if info is None:
            return field
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    # -- derived values -------------------------------------------------------------------

    @cached_property
    def cache_dir(self) -> Path:
        return (self.cache_dir_override or self.home / "cache").expanduser()

    @cached_property
    def objects_dir(self) -> Path:
        return self.home.expanduser() / "objects"

    @cached_property
    def downloads_dir(self) -> Path:
        return self.home.expanduser() / "downloads"

    @cached_property
    def database_url(self) -> str:
        chosen = self.database_url_override or self.shared_database_url
        if chosen is not None:
            return normalize_database_url(chosen.get_secret_value())
        return f"sqlite+aiosqlite:///{self.home.expanduser() / 'filetier.db'}"

    @property
    def database_is_shared(self) -> bool:
        """True when the database came from the generic ``DATABASE_URL`` alone: a name
        another app (or a ``.env`` in the working directory) may have set for itself."""
        return self.database_url_override is None and self.shared_database_url is not None

    @cached_property
    def allowed_roots(self) -> tuple[Path, ...]:
        if not self.allowed_roots_raw:
            return (self.downloads_dir,)
        roots = [Path(p).expanduser() for p in self.allowed_roots_raw.split(os.pathsep) if p]
        if not roots:
            raise ConfigError("FILETIER_ALLOWED_ROOTS is set but names no directory")
        return tuple(roots)

    def refuse_roots_over_the_store(self) -> None:
        """Refuse allowed roots that contain filetier's own files (ConfigError).

        Path tools write and read anywhere inside a root: a root holding the data dir,
        the database or the objects would let a caller replace the database or read
        every owner's objects by path. Servers call this before they start.
        """
        own = {
            "data dir": self.home.expanduser(),
            "objects dir": self.objects_dir,
            "disk cache": self.cache_dir,
        }
        if self.database_url.startswith("sqlite") and ":///" in self.database_url:
            own["database"] = Path(self.database_url.split(":///", 1)[1]).expanduser()
        if self.primary_url and self.primary_url.startswith("file://"):
            own["primary store"] = Path(urlparse(self.primary_url).path)
        # Inside the data dir only the downloads folder is for deliveries; the objects, the
        # cache and a file:// primary must not be reachable through a root either.
        stores = {"objects dir", "disk cache", "primary store"}
        for root in self.allowed_roots:
            real_root = root.expanduser().resolve()
            for what, path in own.items():
                real = path.expanduser().resolve()
                inside = what in stores and real_root.is_relative_to(real)
                if real.is_relative_to(real_root) or inside:
                    relation = "lies inside" if inside else "contains"
                    raise ConfigError(
                        f"FILETIER_ALLOWED_ROOTS: {root} {relation} filetier's {what} ({path}); "
                        "give path tools a directory apart from it, such as "
                        f"{self.downloads_dir} or a folder of its own"
                    )

    @cached_property
    def type_limits(self) -> tuple[tuple[str, int], ...]:
        limits: list[tuple[str, int]] = []
        for item in filter(None, (p.strip() for p in self.type_limits_raw.split(","))):
            pattern, sep, size = item.partition("=")
            if not sep or "/" not in pattern:
                raise ConfigError(
                    f"FILETIER_TYPE_LIMITS entry {item!r} is not of the form type/subtype=SIZE"
                )
            limits.append((pattern.strip().lower(), parse_size(size)))
        return tuple(limits)

    @cached_property
    def supabase(self) -> SupabaseTarget | None:
        """Where the project named by ``SUPABASE_URL`` keeps its storage (see
        :func:`resolve_supabase`); whether it is the primary is :attr:`supabase_primary`."""
        return resolve_supabase(self)

    @cached_property
    def supabase_primary(self) -> bool:
        """The primary is the project's Supabase Storage: its S3 endpoint is in use
        (derived, or set explicitly to a ``.../storage/v1/s3`` address such as a proxy)."""
        if self.supabase is None or self.s3_bucket_name is None:
            return False
        endpoint = self.s3_endpoint_url or ""
        return endpoint == self.supabase.s3_endpoint or endpoint.endswith("/storage/v1/s3")

    @cached_property
    def supabase_project_ref(self) -> str | None:
        target = self.supabase
        return target.project_ref if target else None

    @cached_property
    def s3_bucket_name(self) -> str | None:
        """The primary's bucket: ``FILETIER_S3_BUCKET``, else Supabase's default."""
        if self.s3_bucket:
            return self.s3_bucket
        # The design's variables alone make Supabase the primary: the service key is what
        # creates the bucket and signs the S3 session-token form.
        if self.supabase and self.supabase_service_key is not None:
            return SUPABASE_DEFAULT_BUCKET
        return None

    @cached_property
    def s3_endpoint_url(self) -> str | None:
        """The S3 endpoint: explicit, else Supabase Storage's, else None (AWS)."""
        if self.s3_endpoint:
            return self.s3_endpoint.rstrip("/")
        if self.supabase:
            return self.supabase.s3_endpoint
        return None

    @cached_property
    def s3_signs_payload(self) -> bool:
        """Whether S3 request bodies carry a SigV4 payload hash (see ``s3_sign_payload``).

        The hash is a second SHA-256 pass over every byte sent, on this host and again on
        the server, beside the one content addressing already makes. It only protects
        bytes on a wire nothing else protects: plain HTTP between two hosts.
        """
        if self.s3_sign_payload != "auto":
            return self.s3_sign_payload == "always"
        endpoint = self.s3_endpoint_url
        if endpoint is None:
            return False  # AWS: HTTPS
        parsed = urlparse(endpoint)
        if parsed.scheme == "https":
            return False
        return not _is_loopback(parsed.hostname or "")

    def size_limit_for(self, mime_type: str) -> int:
        """The largest size accepted for ``mime_type`` (first matching pattern wins).

        A pattern matches the type under any of its names (``application/x-dosexec`` and
        ``application/vnd.microsoft.portable-executable`` are one type to a limit)."""
        names = mime_aliases(mime_type.lower())
        for pattern, limit in self.type_limits:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return min(limit, self.max_file_size)
        return self.max_file_size

    @cached_property
    def provider_limit_overrides(self) -> dict[tuple[str, str], int]:
        """``{("kimi", "max_files"): 500, ("kimi", "file-extract"): 50_000_000}``."""
        found: dict[tuple[str, str], int] = {}
        for item in filter(None, (p.strip() for p in self.provider_limits_raw.split(","))):
            name, sep, value = item.partition("=")
            provider, dot, key = name.strip().partition(".")
            if not sep or not dot:
                raise ConfigError(
                    f"FILETIER_PROVIDER_LIMITS entry {item!r} is not of the form provider.key=VALUE"
                )
            found[(provider.lower(), key)] = parse_size(value)
        return found

    @cached_property
    def token_owners(self) -> dict[str, str]:
        """SHA-256 of each configured token -> its owner (tokens are not kept in clear)."""
        import hashlib

        found: dict[str, str] = {}
        raw = self.api_tokens.get_secret_value() if self.api_tokens else ""
        for item in filter(None, (p.strip() for p in raw.split(","))):
            owner, sep, token = item.partition(":")
            if not sep or not owner.strip() or len(token.strip()) < 16:
                raise ConfigError(
                    "FILETIER_API_TOKENS must be comma-separated owner:token pairs with tokens "
                    "of at least 16 characters"
                )
            found[hashlib.sha256(token.strip().encode()).hexdigest()] = owner.strip()
        return found

    @cached_property
    def metrics_token_hash(self) -> str | None:
        """SHA-256 of ``FILETIER_METRICS_TOKEN`` (the token itself is not kept in clear)."""
        import hashlib

        if self.metrics_token is None:
            return None
        token = self.metrics_token.get_secret_value().strip()
        if len(token) < 16:
            raise ConfigError("FILETIER_METRICS_TOKEN must have at least 16 characters")
        return hashlib.sha256(token.encode()).hexdigest()

    @cached_property
    def allowed_hosts(self) -> tuple[str, ...]:
        hosts = [h.strip() for h in self.allowed_hosts_raw.split(",") if h.strip()]
        return tuple(hosts) or ("127.0.0.1", "localhost", "[::1]")

    @property
    def primary_description(self) -> str:
        if self.s3_bucket_name:
            where = self.s3_endpoint_url or "AWS"
            return f"s3://{self.s3_bucket_name}/{self.s3_prefix} at {where}"
        return self.primary_url or f"(local) {self.objects_dir}"

    def public_view(self) -> dict[str, Any]:
        """Every setting with secrets masked: what ``doctor`` prints."""
        view: dict[str, Any] = {
            "home": str(self.home),
            "cache_dir": str(self.cache_dir),
            "database_url": mask_url(self.database_url),
            "primary_url": self.primary_description,
            "allowed_roots": [str(p) for p in self.allowed_roots],
        }
        for name in type(self).model_fields:
            if name in {
                "home",
                "cache_dir_override",
                "database_url_override",
                "shared_database_url",
                "primary_url",
            }:
                continue
            if name == "allowed_roots_raw":
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "****" if value.get_secret_value() else ""
            elif name == "supabase_url" and value:
                value = mask_url(value)
            view[name.removesuffix("_raw")] = value
        if self.s3_bucket_name:
            view["s3_payload_signed"] = self.s3_signs_payload
        if self.supabase:
            view["supabase_storage"] = self.supabase.describe(self)
        return view


# -- Supabase Storage ------------------------------------------------------------------------

SUPABASE_DEFAULT_BUCKET = "exai-files"
_HOSTED_SUFFIXES = (".supabase.co", ".supabase.in")


@dataclass(frozen=True)
class SupabaseTarget:
    """Where a Supabase project's storage is, derived from ``SUPABASE_URL`` and its keys."""

    rest_url: str  # <SUPABASE_URL>/storage/v1: the REST API (buckets)
    s3_endpoint: str  # its S3 protocol
    project_ref: str | None  # None: unknown (a local URL whose keys carry no `ref` claim)

    def describe(self, settings: Settings) -> str:
        """One line for ``doctor``: the credential form and the bucket, no secrets."""
        form = (
            "S3 access keys"
            if settings.s3_access_key_id
            else f"session token (project ref {self.project_ref or '?'}, anon key, "
            f"{'FILETIER_S3_SESSION_TOKEN' if settings.s3_session_token else 'service-role key'})"
        )
        return f"bucket {settings.s3_bucket_name} via {form}"


def _jwt_claim(token: SecretStr | None, claim: str) -> str | None:
    """A claim of a JWT's payload, read without checking the signature: the value only
    names the project, and the server checks the token itself."""
    if token is None:
        return None
    parts = token.get_secret_value().split(".")
    if len(parts) != 3:
        return None  # not a JWT (e.g. the new sb_secret_... keys)
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    value = payload.get(claim) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def resolve_supabase(settings: Settings) -> SupabaseTarget | None:
    """Where the project at ``SUPABASE_URL`` keeps its storage (None when unset).

    Hosted ``https://<ref>.supabase.co`` uses ``https://<ref>.storage.supabase.co/storage/v1/s3``
    (Supabase's direct storage host); any other (self-hosted, local) URL serves the S3
    protocol at ``<SUPABASE_URL>/storage/v1/s3``. The project ref is the hosted name's
    first label, else ``FILETIER_SUPABASE_PROJECT_REF``, else the ``ref`` claim Supabase
    puts in its JWT keys.
    """
    if not settings.supabase_url:
        return None
    base = settings.supabase_url.strip().rstrip("/")
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError("SUPABASE_URL must be an http(s) URL such as https://<ref>.supabase.co")
    host = parsed.hostname.lower()
    hosted = host.endswith(_HOSTED_SUFFIXES)
    ref = settings.supabase_project_ref_override or (
        host.split(".", 1)[0]
        if hosted
        else _jwt_claim(settings.supabase_service_key, "ref")
        or _jwt_claim(settings.supabase_key, "ref")
    )
    if hosted:
        domain = host.split(".", 1)[1]
        s3 = f"https://{host.split('.', 1)[0]}.storage.{domain}/storage/v1/s3"
    else:
        s3 = f"{base}/storage/v1/s3"
    return SupabaseTarget(rest_url=f"{base}/storage/v1", s3_endpoint=s3, project_ref=ref)


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


def _is_loopback(host: str) -> bool:
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
