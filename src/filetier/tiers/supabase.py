"""Supabase Storage as the primary: the two things its S3 protocol cannot do for us.

- **The bucket** is created, private, through Supabase's REST API with the service key
  (``POST <SUPABASE_URL>/storage/v1/bucket``) when it does not exist yet.
- **The region** is ``FILETIER_S3_REGION`` when set; otherwise it is learned from the
  server where the server says it: a refusal naming the region it expects, or a
  ``x-amz-bucket-region`` header. A server that accepts ``us-east-1`` (Supabase's own
  server does unless it enforces its region) needs nothing learned.

Objects themselves go through the S3 protocol (``tiers.objectstore``), which this server
serves without conditional writes: see ``ObstorePrimary(conditional_writes=False)``.

This is the one place httpx exceptions of these calls are translated; keys never appear
in a message.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx

from filetier.config import Settings, SupabaseTarget
from filetier.errors import ConfigError, StorageRefusedError, StorageUnavailableError

DEFAULT_REGION = "us-east-1"

# How Supabase Storage's S3 protocol refuses the session-token form, in the settings'
# own names (checked before the generic S3 hints). A region it does not accept looks
# exactly like a wrong anon key (both change the signature); ``doctor`` tells them apart.
SESSION_TOKEN_REFUSALS = (
    (
        "Invalid Access Key",
        "the server does not know this project ref: check SUPABASE_URL "
        "(or FILETIER_SUPABASE_PROJECT_REF)",
    ),
    (
        "signature verification failed",
        "the service-role key was refused: check SUPABASE_SERVICE_KEY",
    ),
    (
        "SignatureDoesNotMatch",
        "the anon key or the region is wrong: check SUPABASE_KEY and FILETIER_S3_REGION",
    ),
    ("Invalid Region", "the server wants its own region: set FILETIER_S3_REGION"),
    (
        "NoSuchBucket",
        "the bucket does not exist: set SUPABASE_SERVICE_KEY so filetier creates it, or "
        "create it in the Supabase dashboard",
    ),
    # A refused HEAD has no body to say which: name every setting that can cause it.
    (
        "PermissionDenied",
        "the server refused the credentials: check SUPABASE_KEY, SUPABASE_SERVICE_KEY and "
        "FILETIER_S3_REGION",
    ),
)
# "the region 'us-east-1' is wrong; expecting 'eu-central-1'" (AWS-style), <Region>…</Region>
_REGION_NAMED = (
    re.compile(r"expecting '([a-z0-9-]{2,40})'"),
    re.compile(r"<Region>([a-z0-9-]{2,40})</Region>"),
)


def _service_headers(settings: Settings) -> dict[str, str]:
    assert settings.supabase_service_key is not None
    key = settings.supabase_service_key.get_secret_value()
    if key.startswith("sb_secret_"):
        return {"apikey": key}  # new-style keys: the gateway alone reads them
    # Legacy JWT keys: the gateway wants `apikey`, the storage server the bearer token.
    return {"Authorization": f"Bearer {key}", "apikey": key}


def _unreachable(target: SupabaseTarget, exc: httpx.HTTPError) -> StorageUnavailableError:
    return StorageUnavailableError(
        f"Supabase Storage at {target.rest_url} did not answer ({type(exc).__name__}): "
        "is SUPABASE_URL right and the server running and reachable?"
    )


def _status(response: httpx.Response) -> int:
    """Supabase Storage's REST errors come as HTTP 400 with the real status in the JSON
    body (``{"statusCode": "403", ...}``)."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code
    code = body.get("statusCode") if isinstance(body, dict) else None
    try:
        return int(code) if code is not None else response.status_code
    except (TypeError, ValueError):
        return response.status_code


def _refused(target: SupabaseTarget, response: httpx.Response, doing: str) -> StorageRefusedError:
    status = _status(response)
    if status in (401, 403):
        return StorageRefusedError(
            f"Supabase Storage refused the service key while {doing} (HTTP {status}): "
            "check SUPABASE_SERVICE_KEY is the project's service-role key"
        )
    return StorageRefusedError(
        f"Supabase Storage refused {doing} (HTTP {status}) at {target.rest_url}"
    )


BucketState = Literal["created", "private", "public"]


async def ensure_bucket(settings: Settings) -> BucketState:
    """Create the primary's bucket, private, if missing. A bucket that exists is left as
    it is; a public one is reported (anyone could read objects by key), not changed."""
    target = settings.supabase
    bucket = settings.s3_bucket_name
    if target is None or bucket is None:
        raise ConfigError("Supabase Storage is not configured: set SUPABASE_URL")
    if settings.supabase_service_key is None:
        raise ConfigError("creating a Supabase bucket needs SUPABASE_SERVICE_KEY")
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.storage_timeout_seconds, connect=settings.storage_connect_timeout_seconds
        ),
        headers=_service_headers(settings),
    ) as client:
        try:
            found = await client.get(f"{target.rest_url}/bucket/{bucket}")
            if found.status_code == 200:
                return "public" if found.json().get("public") else "private"
            if _status(found) != 404:
                raise _refused(target, found, f"reading bucket {bucket}")
            body: dict[str, Any] = {"id": bucket, "name": bucket, "public": False}
            made = await client.post(f"{target.rest_url}/bucket", json=body)
        except httpx.HTTPError as exc:
            raise _unreachable(target, exc) from exc
    if made.status_code == 200:
        return "created"
    if _status(made) == 409:
        return "private"  # another process created it (private) between our two requests
    raise _refused(target, made, f"creating bucket {bucket}")


def region_named_in(text: str, headers: httpx.Headers | None = None) -> str | None:
    """The region a refusal names, if it names one."""
    if headers is not None and headers.get("x-amz-bucket-region"):
        return headers["x-amz-bucket-region"].strip() or None
    for pattern in _REGION_NAMED:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


async def learn_region(settings: Settings) -> str:
    """``FILETIER_S3_REGION``, else what the server names, else ``us-east-1``.

    One unsigned HEAD of the bucket: S3 servers that know their region say it in
    ``x-amz-bucket-region`` or in the error body even to an anonymous request.
    """
    if settings.s3_region:
        return settings.s3_region
    endpoint = settings.s3_endpoint_url
    bucket = settings.s3_bucket_name
    if not endpoint or not bucket:
        return DEFAULT_REGION
    try:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.storage_timeout_seconds, connect=settings.storage_connect_timeout_seconds
            )
        ) as client:
            response = await client.get(f"{endpoint}/{bucket}", params={"location": ""})
    except httpx.HTTPError:
        return DEFAULT_REGION  # unreachable: the S3 calls will say so, with the reason
    return region_named_in(response.text, response.headers) or DEFAULT_REGION
