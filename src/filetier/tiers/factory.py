"""Build the primary store a Settings object names."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from obstore.store import LocalStore, MemoryStore, S3Store

from filetier.config import Settings
from filetier.errors import ConfigError
from filetier.modes import make_dirs
from filetier.tiers.local import LocalPrimary
from filetier.tiers.objectstore import ObstoreLocalPrimary, ObstorePrimary
from filetier.tiers.protocols import PrimaryStore

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


def build_primary(settings: Settings) -> PrimaryStore:
    """S3 whenever a bucket is configured; else ``FILETIER_PRIMARY_URL``: unset is the
    embedded local directory, ``memory://``, or ``file:///dir`` (kept behind the disk
    cache, as for a network mount)."""
    if settings.s3_bucket:
        return build_s3_primary(settings)
    url = settings.primary_url
    if not url:
        return LocalPrimary(settings.objects_dir)
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        return ObstorePrimary(MemoryStore(), name="memory")
    if parsed.scheme == "file":
        root = Path(parsed.path).expanduser()
        make_dirs(root)
        return ObstoreLocalPrimary(LocalStore(root, mkdir=True), root=root, name=f"file:{root}")
    raise ConfigError(
        f"FILETIER_PRIMARY_URL scheme {parsed.scheme!r} is not supported "
        "(use memory:// or file:///path, set FILETIER_S3_BUCKET for S3, or leave it unset "
        "for the embedded store)"
    )


def s3_credentials(settings: Settings) -> dict[str, str]:
    """Explicit S3 keys, or Supabase's session-token form (project ref + anon key + JWT)."""
    token = settings.s3_session_token.get_secret_value() if settings.s3_session_token else None
    key_id = settings.s3_access_key_id
    secret = (
        settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    )
    if token and not key_id and settings.supabase_project_ref:
        key_id = settings.supabase_project_ref
        if secret is None and settings.supabase_key is not None:
            secret = settings.supabase_key.get_secret_value()
    if not key_id or not secret:
        raise ConfigError(
            "S3 credentials missing: set FILETIER_S3_ACCESS_KEY_ID and "
            "FILETIER_S3_SECRET_ACCESS_KEY (for Supabase's session-token form: SUPABASE_URL, "
            "SUPABASE_KEY and FILETIER_S3_SESSION_TOKEN)"
        )
    credentials = {"access_key_id": key_id, "secret_access_key": secret}
    if token:
        credentials["session_token"] = token
    return credentials


def build_s3_primary(settings: Settings) -> PrimaryStore:
    assert settings.s3_bucket is not None
    endpoint = settings.s3_endpoint_url
    client: ClientConfig = {
        "timeout": timedelta(seconds=settings.storage_timeout_seconds),
        "connect_timeout": timedelta(seconds=settings.storage_connect_timeout_seconds),
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
    }
    # Reads are retried by obstore (bounded); writes only by our stamina loop, which
    # re-sends the whole object from its local temp file (a second store, no retries).
    retry: RetryConfig = {
        "max_retries": 2,
        "retry_timeout": timedelta(seconds=settings.storage_retry_timeout_seconds),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2,
        },
    }
    options: dict[str, Any] = {
        "region": settings.s3_region,
        "virtual_hosted_style_request": not settings.s3_path_style,
        # Content addressing already hashes every byte once; a SigV4 payload hash would
        # hash it again here and on the server (see Settings.s3_signs_payload).
        "unsigned_payload": not settings.s3_signs_payload,
        **s3_credentials(settings),
    }
    if endpoint:
        options["endpoint"] = endpoint
    prefix = settings.s3_prefix.strip("/") or None
    store = S3Store(
        settings.s3_bucket, prefix=prefix, client_options=client, retry_config=retry, **options
    )
    no_retries: RetryConfig = {**retry, "max_retries": 0}
    write_store = S3Store(
        settings.s3_bucket, prefix=prefix, client_options=client, retry_config=no_retries, **options
    )
    where = endpoint or "AWS"
    return ObstorePrimary(
        store,
        write_store=write_store,
        name=f"s3://{settings.s3_bucket}/{settings.s3_prefix} at {where}",
        retry_attempts=settings.storage_retry_attempts,
        retry_timeout=settings.storage_retry_timeout_seconds,
    )
