"""``Settings``: the field groups composed into one class, and what is derived from them.

The fields live in :mod:`.store_fields`, :mod:`.provider_fields`, :mod:`.server_fields`
and :mod:`.supabase`; this class adds the configuration shared by all of them (the
``FILETIER_`` prefix, ``.env``, frozen), the Python-only names, and the derived values.
"""

from __future__ import annotations

import fnmatch
import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from filetier.config.provider_fields import ProviderFields
from filetier.config.server_fields import ServerFields
from filetier.config.store_fields import StoreFields
from filetier.config.supabase import (
    SUPABASE_DEFAULT_BUCKET,
    SupabaseFields,
    SupabaseTarget,
    resolve_supabase,
)
from filetier.config.values import is_loopback, mask_url, normalize_database_url, parse_size
from filetier.digest import mime_aliases
from filetier.errors import ConfigError

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


# pydantic orders fields from the last base to the first: store, providers, serving, then
# Supabase, as ``doctor`` prints them.
class Settings(SupabaseFields, ServerFields, ProviderFields, StoreFields, BaseSettings):
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
        return not is_loopback(parsed.hostname or "")

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
