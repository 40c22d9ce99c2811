"""Build the primary store a Settings object names."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from filetier.errors import ConfigError
from filetier.modes import make_dirs
from filetier.tiers.local import LocalPrimary

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

    from filetier.config import Settings
    from filetier.tiers.protocols import PrimaryStore

# obstore, stamina and httpx (Supabase) are imported by the branches that use them: the
# embedded default needs none of them, and a short CLI command would pay ~0.1 s for them.


async def open_primary(settings: Settings) -> PrimaryStore:
    """:func:`build_primary`, after what a Supabase primary needs first: its bucket
    (created private when missing) and its region (learned when not set)."""
    if not settings.supabase_primary:
        return build_primary(settings)
    from filetier.tiers.supabase import ensure_bucket, learn_region

    if settings.supabase_service_key is not None:
        await ensure_bucket(settings)
    return build_s3_primary(settings, region=await learn_region(settings))


def build_primary(settings: Settings) -> PrimaryStore:
    """S3 whenever a bucket is configured (or Supabase's variables are set); else
    ``FILETIER_PRIMARY_URL``: unset is the embedded local directory, ``memory://``, or
    ``file:///dir`` (kept behind the disk cache, as for a network mount)."""
    if settings.s3_bucket_name:
        return build_s3_primary(settings)
    url = settings.primary_url
    if not url:
        return LocalPrimary(settings.objects_dir)
    parsed = urlparse(url)
    from obstore.store import LocalStore, MemoryStore

    from filetier.tiers.objectstore import ObstoreLocalPrimary, ObstorePrimary

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
    """Explicit S3 keys, or Supabase's session-token form: access key id = project ref,
    secret = anon key (``SUPABASE_KEY``), session token = ``FILETIER_S3_SESSION_TOKEN`` or
    else the service-role key (``SUPABASE_SERVICE_KEY``)."""
    token = settings.s3_session_token or (
        settings.supabase_service_key if settings.supabase else None
    )
    key_id = settings.s3_access_key_id
    secret = settings.s3_secret_access_key
    if key_id and secret is not None:
        credentials = {"access_key_id": key_id, "secret_access_key": secret.get_secret_value()}
        if settings.s3_session_token is not None:
            credentials["session_token"] = settings.s3_session_token.get_secret_value()
        return credentials
    if settings.supabase is not None and token is not None:
        if not settings.supabase_project_ref:
            raise ConfigError(
                "Supabase project ref unknown: SUPABASE_URL is not https://<ref>.supabase.co "
                "and the keys carry no `ref` claim; set FILETIER_SUPABASE_PROJECT_REF (or "
                "FILETIER_S3_ACCESS_KEY_ID and FILETIER_S3_SECRET_ACCESS_KEY)"
            )
        anon = secret or settings.supabase_key
        if anon is None:
            raise ConfigError(
                "Supabase's S3 session-token form signs with the anon key: set SUPABASE_KEY "
                "(or FILETIER_S3_ACCESS_KEY_ID and FILETIER_S3_SECRET_ACCESS_KEY)"
            )
        return {
            "access_key_id": key_id or settings.supabase_project_ref,
            "secret_access_key": anon.get_secret_value(),
            "session_token": token.get_secret_value(),
        }
    raise ConfigError(
        "S3 credentials missing: set FILETIER_S3_ACCESS_KEY_ID and "
        "FILETIER_S3_SECRET_ACCESS_KEY (for Supabase: SUPABASE_URL, SUPABASE_KEY and "
        "SUPABASE_SERVICE_KEY)"
    )


def build_s3_primary(settings: Settings, *, region: str | None = None) -> PrimaryStore:
    from obstore.store import S3Store

    from filetier.tiers.objectstore import ObstorePrimary
    from filetier.tiers.supabase import SESSION_TOKEN_REFUSALS

    bucket = settings.s3_bucket_name
    assert bucket is not None
    endpoint = settings.s3_endpoint_url
    credentials = s3_credentials(settings)
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
        "region": region or settings.s3_region or "us-east-1",
        "virtual_hosted_style_request": not settings.s3_path_style,
        # Content addressing already hashes every byte once; a SigV4 payload hash would
        # hash it again here and on the server (see Settings.s3_signs_payload).
        "unsigned_payload": not settings.s3_signs_payload,
        **credentials,
    }
    if endpoint:
        options["endpoint"] = endpoint
    prefix = settings.s3_prefix.strip("/") or None
    store = S3Store(bucket, prefix=prefix, client_options=client, retry_config=retry, **options)
    no_retries: RetryConfig = {**retry, "max_retries": 0}
    write_store = S3Store(
        bucket, prefix=prefix, client_options=client, retry_config=no_retries, **options
    )
    where = endpoint or "AWS"
    return ObstorePrimary(
        store,
        write_store=write_store,
        name=f"s3://{bucket}/{settings.s3_prefix} at {where}",
        retry_attempts=settings.storage_retry_attempts,
        retry_timeout=settings.storage_retry_timeout_seconds,
        # Supabase Storage accepts If-None-Match and overwrites anyway: nothing may rest
        # on put-if-absent there (see ObstorePrimary).
        conditional_writes=not (
            settings.supabase_primary or (endpoint or "").endswith("/storage/v1/s3")
        ),
        refusals=(
            SESSION_TOKEN_REFUSALS
            if settings.supabase_primary and "session_token" in credentials
            else ()
        ),
    )
