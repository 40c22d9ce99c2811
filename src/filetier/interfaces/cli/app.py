"""The ``filetier`` command: parse, call FileStore, print; no business logic here.

Errors become one actionable line on stderr and the exit code of
:data:`filetier.errors.ERROR_TABLE`. ``--json`` prints machine-readable results on stdout.
The process leaves through ``os._exit`` after flushing: obstore's Rust runtime can abort
the interpreter during normal finalisation (exit code 134) in short-lived commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from filetier import logsafe
from filetier.config import Settings
from filetier.errors import FiletierError, mapping_for
from filetier.models import CleanupPolicy, MaintenanceReport
from filetier.store import FileStore

T = TypeVar("T")

app = typer.Typer(
    name="filetier",
    help="A content-addressed, three-tier file store for LLM agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Metadata database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class _State:
    home: Path | None = None
    verbose: bool = False


state = _State()


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory (overrides FILETIER_HOME).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log to stderr.")] = False,
) -> None:
    state.home = home
    state.verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logsafe.install_on_root()


def build_settings() -> Settings:
    overrides: dict[str, Any] = {}
    if state.home is not None:
        overrides["home"] = state.home
    settings = Settings(**overrides)
    if settings.allowed_roots_raw is None:
        # A person at a shell may write into the directory they are in; agents and
        # servers get only the configured roots.
        roots = os.pathsep.join([str(settings.downloads_dir), str(Path.cwd())])
        settings = Settings(**overrides, allowed_roots_raw=roots)
    return settings


def run(job: Callable[[FileStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with FileStore(build_settings()) as store:
            return await job(store)

    return asyncio.run(main())


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        data: Any = value
        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
        elif isinstance(value, list):
            data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        out.print(value)


@contextmanager
def transfer_bar(
    description: str, total: int | None, enabled: bool
) -> Iterator[Callable[[int], None] | None]:
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# -- commands -----------------------------------------------------------------------------


@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="Files to store.")],
    name: Annotated[str | None, typer.Option(help="Filename to record (one file only).")] = None,
    mime: Annotated[
        str | None, typer.Option(help="MIME type, used when sniffing is inconclusive.")
    ] = None,
    meta: Annotated[str | None, typer.Option(help="JSON object stored with the file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store files; identical bytes are kept once."""
    if name is not None and len(paths) > 1:
        raise typer.BadParameter("--name applies to a single file")
    metadata = None
    if meta is not None:
        try:
            metadata = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--meta is not valid JSON: {exc.msg}") from None

    async def job(store: FileStore) -> list[Any]:
        results = []
        for path in paths:
            total = path.stat().st_size if path.is_file() else None
            with transfer_bar(f"upload {path.name}", total, not as_json) as progress:
                results.append(
                    await store.upload_file(
                        path, filename=name, mime_type=mime, metadata=metadata, progress=progress
                    )
                )
        return results

    results = run(job)
    if as_json:
        emit(results[0] if len(results) == 1 else results, True)
        return
    for r in results:
        note = " (already stored: no bytes written)" if r.deduplicated else ""
        out.print(
            f"{r.file_id}  {r.filename}  {human(r.size)}  {r.mime_type}  sha256:{r.sha256[:16]}…{note}"
        )


@app.command()
def download(
    file_id: Annotated[str, typer.Argument(help="File id (UUID).")],
    dest: Annotated[
        Path | None, typer.Option("--dest", "-o", help="Destination file or directory.")
    ] = None,
    cleanup: Annotated[
        str | None,
        typer.Option(help="For the downloads folder: retain (default), immediate or keep."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a stored file to a destination inside the allowed roots."""
    if cleanup not in (None, "retain", "immediate", "keep"):
        raise typer.BadParameter("--cleanup must be retain, immediate or keep")
    policy: CleanupPolicy | None = cleanup  # type: ignore[assignment]
    destination = dest.expanduser().absolute() if dest is not None else None

    async def job(store: FileStore) -> Any:
        record = await store.stat(file_id)
        with transfer_bar(f"download {record.filename}", record.size, not as_json) as progress:
            return await store.download(file_id, destination, cleanup=policy, progress=progress)

    result = run(job)
    if as_json:
        emit(result, True)
    else:
        out.print(f"{result.path}  ({human(result.size)}, from {result.tier}, sha256 verified)")


@app.command("ls")
def list_files(
    name: Annotated[str | None, typer.Option(help="Filename contains.")] = None,
    mime: Annotated[str | None, typer.Option("--type", help="MIME type, e.g. image/*.")] = None,
    sha256: Annotated[str | None, typer.Option(help="Exact SHA-256.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List stored files, newest first."""
    page = run(
        lambda s: s.list(
            name_contains=name, mime_type=mime, sha256=sha256, limit=limit, offset=offset
        )
    )
    if as_json:
        emit(page, True)
        return
    table = Table("file id", "name", "size", "type", "uploaded", box=None)
    for r in page.items:
        table.add_row(
            str(r.file_id),
            r.filename,
            human(r.size),
            r.mime_type,
            f"{r.upload_date:%Y-%m-%d %H:%M}",
        )
    out.print(table)
    more = f", next: --offset {page.next_offset}" if page.next_offset is not None else ""
    err.print(f"{len(page.items)} of {page.total} files{more}")


@app.command("stat")
def stat_file(file_id: str, as_json: JsonFlag = False) -> None:
    """Show a file's metadata."""
    record = run(lambda s: s.stat(file_id))
    if as_json:
        emit(record, True)
        return
    for key, value in record.model_dump(mode="json").items():
        out.print(f"{key:>18}: {value}")


@app.command("rm")
def remove(
    file_ids: Annotated[list[str], typer.Argument(help="File ids to delete.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete files; their bytes go when no other file shares them."""

    async def job(store: FileStore) -> list[Any]:
        return [await store.delete(fid) for fid in file_ids]

    results = run(job)
    if as_json:
        emit(results, True)
        return
    for r in results:
        note = "bytes removed" if r.blob_deleted else "bytes kept (shared with another file)"
        out.print(f"deleted {r.file_id} ({note})")


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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
    table = Table("tier", "downloads", "bytes served", "hit rate", box=None)
    rates = result.hit_rates
    for name, tier in result.tiers.items():
        table.add_row(name, str(tier.hits), human(tier.bytes_served), f"{rates[name]:.0%}")
    out.print(table)


@app.command()
def history(
    file_id: Annotated[str | None, typer.Argument(help="Only this file.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Recent downloads: when, where to, which tier served them."""
    events = run(lambda s: s.history(file_id, limit=limit))
    if as_json:
        emit(list(events), True)
        return
    table = Table("when", "file id", "tier", "bytes", "ms", "destination", box=None)
    for e in events:
        table.add_row(
            f"{e.downloaded_at:%Y-%m-%d %H:%M:%S}",
            str(e.file_id),
            e.tier,
            human(e.bytes),
            f"{e.duration_ms:.1f}",
            e.destination_path or "-",
        )
    out.print(table)


@app.command("provider-id")
def provider_id(
    file_id: Annotated[str, typer.Argument(help="File id.")],
    provider: Annotated[str, typer.Argument(help="kimi, glm or openai.")],
    purpose: Annotated[str, typer.Option(help="Upload purpose.")] = "file-extract",
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the id with the provider.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The provider's file id for a file, uploading it there at most once."""
    result = run(lambda s: s.get_provider_file_id(file_id, provider, purpose, verify=verify))
    if as_json:
        emit(result, True)
    else:
        note = "uploaded now" if result.uploaded else "already there: nothing sent"
        out.print(f"{result.provider_file_id}  ({result.provider}, {result.purpose}, {note})")


@app.command()
def text(
    file_id: Annotated[str, typer.Argument(help="File id.")],
    provider: Annotated[str, typer.Argument(help="kimi, glm or openai.")],
    as_json: JsonFlag = False,
) -> None:
    """The provider's extracted text of a file (cached; never the original bytes)."""
    result = run(lambda s: s.get_file_text(file_id, provider))
    if as_json:
        emit(result, True)
    else:
        sys.stdout.write(result.text + ("" if result.text.endswith("\n") else "\n"))


@app.command()
def ask(
    args: Annotated[list[str], typer.Argument(help="FILE_ID... QUESTION")],
    provider: Annotated[str, typer.Option("--provider", "-p", help="kimi, glm or openai.")],
    model: Annotated[str | None, typer.Option(help="Model (default: the provider's).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask a question about one or more files: `filetier ask ID... -p kimi "question"`."""
    if len(args) < 2:
        raise typer.BadParameter("give at least one file id and then the question")
    *file_ids, question = args
    result = run(lambda s: s.ask_file(file_ids, question, provider, model))
    if as_json:
        emit(result, True)
    else:
        out.print(result.answer, markup=False, highlight=False)


providers_app = typer.Typer(help="Provider file records.", no_args_is_help=True)
app.add_typer(providers_app, name="providers")


@providers_app.command("sync")
def providers_sync(
    provider: Annotated[
        list[str] | None, typer.Option("--provider", "-p", help="Only these providers.")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Carry out the plan.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reconcile our provider records with each provider's file list (a dry run unless
    --apply)."""
    report = run(lambda s: s.sync_providers(provider, dry_run=not apply))
    if as_json:
        emit(report, True)
        return
    verb = "would" if report.dry_run else "did"
    for action in report.actions:
        out.print(
            f"{verb} {action.kind:<20} {action.provider:<7} {action.provider_file_id}  ({action.detail})"
        )
    out.print(
        f"{len(report.actions)} actions for {', '.join(report.providers) or 'no configured provider'}"
        + ("; run with --apply to carry them out" if report.dry_run and report.actions else "")
    )


token_app = typer.Typer(help="API tokens for the HTTP API and MCP over HTTP.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    owner: Annotated[str, typer.Argument(help="Owner the token acts for.")],
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    from filetier.auth import TokenAuthority

    token = run(lambda s: TokenAuthority(s.settings, s.db).create(owner, name))
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list(as_json: JsonFlag = False) -> None:
    """Tokens created with `token create` (owner, label, hash prefix)."""
    from filetier.auth import TokenAuthority

    tokens = run(lambda s: TokenAuthority(s.settings, s.db).list())
    if as_json:
        emit(
            [{"owner": t.owner, "name": t.name, "hash": t.token_hash_prefix} for t in tokens], True
        )
        return
    for t in tokens:
        out.print(f"{t.token_hash_prefix}  {t.owner}  {t.name or ''}")


@token_app.command("revoke")
def token_revoke(
    hash_prefix: Annotated[str, typer.Argument(help="Hash prefix from `token list`.")],
) -> None:
    """Revoke tokens whose hash starts with the given prefix."""
    from filetier.auth import TokenAuthority

    count = run(lambda s: TokenAuthority(s.settings, s.db).revoke(hash_prefix))
    out.print(f"revoked {count} token(s)")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (a new data dir does this on first use)."""
    from filetier.metadata.database import Database, head_revision

    settings = build_settings()

    async def job() -> tuple[bool, str | None]:
        db = Database(settings.database_url)
        try:
            ran = await db.upgrade(
                lock_dir=settings.home.expanduser() if settings.home.expanduser().exists() else None
            )
            return ran, await db.current_revision()
        finally:
            await db.close()

    settings.home.expanduser().mkdir(parents=True, exist_ok=True)
    ran, revision = asyncio.run(job())
    out.print(f"{'migrated' if ran else 'already'} at revision {revision} (head {head_revision()})")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (default FILETIER_HTTP_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default FILETIER_HTTP_PORT, 8787).")
    ] = None,
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve MCP over stdio instead.")] = False,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Serve without tokens (refused unless bound to loopback)."),
    ] = False,
) -> None:
    """Serve the HTTP API and MCP (streamable HTTP at /mcp) on one port."""
    settings = build_server_settings(allow_no_auth=True) if no_auth else build_server_settings()
    if stdio:
        from filetier.interfaces.mcp.server import run_stdio

        run_stdio(settings)
        return
    from filetier.interfaces.serve import run as run_server

    run_server(settings, host or settings.http_host, port or settings.http_port)


@app.command()
def mcp() -> None:
    """Serve MCP over stdio, for clients that launch their servers (logs go to stderr)."""
    from filetier.interfaces.mcp.server import run_stdio

    run_stdio(build_server_settings())


def build_server_settings(**extra: Any) -> Settings:
    """Servers get only the configured roots: no current-directory convenience."""
    overrides: dict[str, Any] = dict(extra)
    if state.home is not None:
        overrides["home"] = state.home
    return Settings(**overrides)


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Print the effective configuration (secrets masked) and check every service."""
    from filetier.interfaces.cli.doctor import run_checks

    settings = build_settings()
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, flush, and leave without interpreter finalisation."""
    code = 0
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FiletierError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        code = mapping_for(exc).exit_code
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(
            f"error: invalid setting {first['loc'][0] if first['loc'] else ''}: {first['msg']}",
            markup=False,
        )
        code = 3
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        code = 130
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
