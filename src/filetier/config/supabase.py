"""Supabase Storage: the ``SUPABASE_*`` settings and where the project keeps its storage.

``SUPABASE_URL`` and its keys name a project; :func:`resolve_supabase` derives its REST
and S3 endpoints and project ref from them (:class:`SupabaseTarget`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from pydantic import BaseModel, Field, SecretStr, field_validator

from filetier.config.values import env_names
from filetier.errors import ConfigError


class SupabaseFields(BaseModel):
    """A mixin of ``Settings``: the design's ``SUPABASE_*`` names."""

    supabase_url: str | None = Field(default=None, validation_alias=env_names("SUPABASE_URL"))
    supabase_key: SecretStr | None = Field(default=None, validation_alias=env_names("SUPABASE_KEY"))
    supabase_service_key: SecretStr | None = Field(
        default=None, validation_alias=env_names("SUPABASE_SERVICE_KEY")
    )
    supabase_project_ref_override: str | None = Field(
        default=None,
        validation_alias=env_names("FILETIER_SUPABASE_PROJECT_REF", "supabase_project_ref"),
        description="Supabase project ref (the S3 session-token form's key id); default: from "
        "a hosted SUPABASE_URL, else the `ref` claim of SUPABASE_KEY / SUPABASE_SERVICE_KEY.",
    )

    @field_validator("supabase_url", "supabase_key", "supabase_service_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `SUPABASE_SERVICE_KEY=` in a .env means "not set", not "an empty key".
        return None if isinstance(value, str) and not value.strip() else value


class _Credentials(Protocol):
    """What :meth:`SupabaseTarget.describe` reads of ``Settings`` (typed here so this
    module need not import ``settings``, which imports it)."""

    @property
    def s3_access_key_id(self) -> str | None: ...
    @property
    def s3_session_token(self) -> SecretStr | None: ...
    @property
    def s3_bucket_name(self) -> str | None: ...


SUPABASE_DEFAULT_BUCKET = "exai-files"
_HOSTED_SUFFIXES = (".supabase.co", ".supabase.in")


@dataclass(frozen=True)
class SupabaseTarget:
    """Where a Supabase project's storage is, derived from ``SUPABASE_URL`` and its keys."""

    rest_url: str  # <SUPABASE_URL>/storage/v1: the REST API (buckets)
    s3_endpoint: str  # its S3 protocol
    project_ref: str | None  # None: unknown (a local URL whose keys carry no `ref` claim)

    def describe(self, settings: _Credentials) -> str:
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


def resolve_supabase(settings: SupabaseFields) -> SupabaseTarget | None:
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
