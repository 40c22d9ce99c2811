"""``filetier doctor``: check each configured service answers, without leaking secrets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from filetier.config import Settings
from filetier.errors import FiletierError, StorageRefusedError
from filetier.metadata.database import Database, head_revision
from filetier.modes import make_dirs
from filetier.providers.registry import SPECS, build_provider, configured_names
from filetier.tiers.factory import build_s3_primary, open_primary
from filetier.tiers.protocols import LocalPath, PrimaryStore
from filetier.tiers.supabase import DEFAULT_REGION, ensure_bucket


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail}


def _writable_dir(path: Path) -> tuple[bool, str]:
    try:
        make_dirs(path)
        probe = path / f".doctor-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return (
            False,
            f"{path} is not writable ({exc.strerror}); fix its permissions or point the setting elsewhere",
        )
    free = shutil.disk_usage(path).free
    return True, f"{path} writable, {free / 1e9:.1f} GB free"


async def _probe(settings: Settings, primary: PrimaryStore) -> None:
    """List, then write, read and delete one small object."""
    # A listing first: its refusals carry the server's reason in a body (a HEAD's cannot).
    async for _ in primary.list_objects("doctor/"):
        break
    probe = settings.cache_dir / f".doctor-probe-{os.getpid()}"
    probe.write_bytes(b"filetier doctor probe")
    try:
        key = f"doctor/probe-{os.getpid()}"
        await primary.put_file(key, probe)
        if await primary.head(key) is None:
            raise StorageRefusedError(f"{primary.name}: an object written was not found again")
        await primary.delete(key)
    finally:
        probe.unlink(missing_ok=True)


async def _region_diagnosis(settings: Settings) -> str:
    """A refused probe may be a region the server does not accept (the signature then
    fails exactly as with a wrong key): try the one every S3 server takes."""
    if not settings.s3_region or settings.s3_region == DEFAULT_REGION:
        return ""  # nothing to compare with: the refusal's own hint names the region
    try:
        await _probe(settings, build_s3_primary(settings, region=DEFAULT_REGION))
    except FiletierError:
        return ""  # the region is not (only) what is wrong
    return (
        f" -- region mismatch: the server refuses FILETIER_S3_REGION={settings.s3_region} "
        f"and accepts {DEFAULT_REGION}: fix or unset FILETIER_S3_REGION"
    )


async def _supabase_bucket(settings: Settings) -> dict[str, Any]:
    assert settings.supabase is not None
    what = settings.supabase.describe(settings)
    if settings.supabase_service_key is None:
        return _check("supabase storage", True, f"{what} (no SUPABASE_SERVICE_KEY: not created)")
    try:
        state = await ensure_bucket(settings)
    except FiletierError as exc:
        return _check("supabase storage", False, f"{what}: {exc}")
    if state == "public":
        return _check(
            "supabase storage",
            False,
            f"{what}: the bucket is PUBLIC, anyone who knows a key can read the object: "
            "make it private in the Supabase dashboard",
        )
    done = "created it (private)" if state == "created" else "bucket exists (private)"
    return _check("supabase storage", True, f"{what}: {done}")


async def run_checks(settings: Settings) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    ok, detail = _writable_dir(settings.home.expanduser())
    checks.append(_check("data dir", ok, detail))
    ok, detail = _writable_dir(settings.cache_dir)
    checks.append(_check("disk cache", ok, detail))

    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        revision = await db.current_revision()
        head = head_revision()
        if revision == head:
            checks.append(_check("metadata database", True, f"{db.safe_url} at schema {revision}"))
        else:
            checks.append(
                _check(
                    "metadata database",
                    revision is None,
                    f"{db.safe_url} at schema {revision or 'none'}, newest {head}: "
                    "run `filetier db upgrade` (a new data dir migrates itself on first use)",
                )
            )
    except FiletierError as exc:
        checks.append(_check("metadata database", False, str(exc)))
    finally:
        await db.close()

    if settings.supabase_primary:
        checks.append(await _supabase_bucket(settings))
    try:
        primary = await open_primary(settings)
        if isinstance(primary, LocalPath):
            ok, detail = _writable_dir(primary.staging_dir())
            checks.append(_check("primary store", ok, f"{primary.name}: {detail}"))
        else:
            try:
                await _probe(settings, primary)
            except StorageRefusedError as exc:
                raise StorageRefusedError(f"{exc}{await _region_diagnosis(settings)}") from exc
            checks.append(
                _check("primary store", True, f"{primary.name}: write, read and delete ok")
            )
        await primary.close()
    except FiletierError as exc:
        checks.append(_check("primary store", False, str(exc)))

    configured = configured_names(settings)
    for name, spec in SPECS.items():
        if name not in configured:
            checks.append(
                _check(
                    f"provider {name}", True, f"not configured (set {spec.key_setting} to use it)"
                )
            )
            continue
        try:
            client = build_provider(name, settings)
        except FiletierError as exc:  # e.g. its SDK extra is not installed
            checks.append(_check(f"provider {name}", False, str(exc)))
            continue
        try:
            files = await client.list_files()
            checks.append(
                _check(
                    f"provider {name}", True, f"{client.account} answers; {len(files)} files held"
                )
            )
        except FiletierError as exc:
            checks.append(_check(f"provider {name}", False, str(exc)))
        finally:
            await client.close()

    for root in settings.allowed_roots:
        exists = root.expanduser().is_dir()
        checks.append(
            _check(
                "download root",
                True,
                f"{root} {'exists' if exists else 'will be created on first download'}",
            )
        )
    return checks
