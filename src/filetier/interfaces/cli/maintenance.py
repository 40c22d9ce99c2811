"""Maintenance commands: ``verify``, ``cleanup``, ``gc``, ``stats``, ``doctor`` and
``db upgrade``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from filetier.interfaces.cli.context import JsonFlag, build_settings, make_typer, run
from filetier.interfaces.cli.output import emit, human, life, out

if TYPE_CHECKING:
    from filetier.models import MaintenanceReport

db_app = make_typer(help="Metadata database commands.")


def verify(
    fix: Annotated[bool, typer.Option("--fix", help="Repair what can be repaired.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-hash every stored object and cache copy; exit 12 if problems remain."""
    report = run(lambda s: s.verify(fix=fix))
    if as_json:
        emit(report, True)
    else:
        for f in report.findings:
            mark = "fixed" if f.fixed else "FOUND"
            out.print(f"{mark:>5} {f.kind:<18} {(f.sha256 or '')[:16]}  {f.detail}")
        out.print(
            f"checked {report.blobs_checked} objects and {report.cache_entries_checked} cache "
            f"copies, {human(report.bytes_verified)} verified, {len(report.findings)} findings"
        )
    if any(not f.fixed for f in report.findings):
        raise typer.Exit(12)


def _print_report(report: MaintenanceReport, as_json: bool) -> None:
    if as_json:
        emit(report.model_dump(mode="json") | {"bytes_freed": report.bytes_freed}, True)
        return
    verb = "would" if report.dry_run else "did"
    for action in report.actions:
        out.print(
            f"{verb} {action.kind:<22} {human(action.bytes):>10}  {action.target}  ({action.reason})"
        )
    out.print(
        f"{report.operation}: {len(report.actions)} actions, {human(report.bytes_freed)} {'to free' if report.dry_run else 'freed'}"
    )


def cleanup(
    max_age_days: Annotated[
        float | None, typer.Option(help="Evict cache copies unused this long.")
    ] = None,
    max_size_mb: Annotated[
        float | None, typer.Option(help="Shrink the disk cache to this size.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Evict old cache copies and expired delivered downloads."""
    report = run(lambda s: s.cleanup_cache(max_age_days, max_size_mb, dry_run=dry_run))
    _print_report(report, as_json)


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
    grace_seconds: Annotated[
        float | None, typer.Option(help="Keep unreferenced content younger than this.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove stored bytes that no file references."""
    report = run(lambda s: s.gc(dry_run=dry_run, grace_seconds=grace_seconds))
    _print_report(report, as_json)


def stats(as_json: JsonFlag = False) -> None:
    """Files, bytes, cache sizes and hit rates per tier."""
    result = run(lambda s: s.stats())
    if as_json:
        emit(result.model_dump(mode="json") | {"hit_rates": result.hit_rates}, True)
        return
    out.print(
        f"files {result.files} ({human(result.logical_bytes)}), stored once as {result.blobs} blobs ({human(result.unique_bytes)})"
    )
    out.print(
        f"memory cache {human(result.memory_bytes)} / {human(result.memory_max_bytes)} (this process)"
    )
    out.print(
        f"disk cache {result.disk_cache_entries} copies, {human(result.disk_cache_bytes)} / {human(result.disk_cache_max_bytes)}"
    )
    from rich.table import Table

    table = Table("tier", "downloads", "bytes served", "hit rate", box=None)
    rates = result.hit_rates
    for name, tier in result.tiers.items():
        table.add_row(name, str(tier.hits), human(tier.bytes_served), f"{rates[name]:.0%}")
    out.print(table)
    if result.provider_copies:
        copies = Table("provider", "purpose", "provider file id", "life left", box=None)
        for c in result.provider_copies:
            copies.add_row(c.provider, c.purpose, c.provider_file_id, life(c))
        out.print(copies)


def doctor(as_json: JsonFlag = False) -> None:
    """Print the effective configuration (secrets masked) and check every service."""
    from filetier.interfaces.cli.doctor import run_checks

    settings = build_settings()
    import asyncio

    checks = asyncio.run(run_checks(settings))
    failed = [c for c in checks if not c["ok"]]
    if as_json:
        emit({"settings": settings.public_view(), "checks": checks}, True)
    else:
        for key, value in settings.public_view().items():
            out.print(f"{key:>26}: {value}")
        for check in checks:
            mark = "[green]ok[/]" if check["ok"] else "[red]FAIL[/]"
            out.print(f"{mark} {check['name']}: {check['detail']}")
    if failed:
        raise typer.Exit(13)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply pending schema migrations (a new data dir does this on first use).

    Run on purpose, it also adds filetier's tables to a database that holds other tables
    (on PostgreSQL, inside FILETIER_DATABASE_SCHEMA), which starting filetier with only the
    generic DATABASE_URL refuses to do."""
    from filetier.metadata.database import Database, head_revision
    from filetier.modes import make_dirs

    settings = build_settings()

    async def job() -> tuple[bool, str | None]:
        db = Database(settings.database_url, schema=settings.database_schema)
        try:
            ran = await db.upgrade(
                lock_dir=settings.home.expanduser() if settings.home.expanduser().exists() else None
            )
            return ran, await db.current_revision()
        finally:
            await db.close()

    make_dirs(settings.home.expanduser())
    import asyncio

    ran, revision = asyncio.run(job())
    if as_json:
        emit({"migrated": ran, "revision": revision, "head": head_revision()}, True)
    else:
        out.print(
            f"{'migrated' if ran else 'already'} at revision {revision} (head {head_revision()})"
        )
