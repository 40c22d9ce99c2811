"""The ``filetier`` command: parse, call FileStore, print; no business logic here.

Errors become one actionable line on stderr and the exit code of
:data:`filetier.errors.ERROR_TABLE` (its docstring lists every code). ``--json`` prints
machine-readable results on stdout, and errors as one JSON object on stderr. Wherever a
file id is taken, a unique prefix of it is accepted (as git takes commit prefixes),
searched among the acting owner's files only. The CLI acts as one owner: ``--owner`` or
``FILETIER_OWNER``, else ``default``.
The process leaves through ``os._exit`` after flushing: obstore's Rust runtime can abort
the interpreter during normal finalisation (exit code 134) in short-lived commands.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from filetier import __version__, logsafe
from filetier.errors import ConfigError, FiletierError, InvalidFileIdError, mapping_for

if TYPE_CHECKING:
    from uuid import UUID

    from rich.console import Console

    from filetier.config import Settings
    from filetier.models import CleanupPolicy, FileRecord, MaintenanceReport, ProviderCopyInfo
    from filetier.store import FileStore

# Only typer and the standard library load at import: `filetier --help` and `--version`
# answer without SQLAlchemy, pydantic or rich (~0.5 s on a small machine); each command
# imports what it uses.

T = TypeVar("T")


def _typer(**kwargs: Any) -> typer.Typer:
    # Plain (click) help: typer's rich help shows every boolean flag as taking a value
    # ("--json <bool>"), which it does not.
    return typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        **kwargs,
    )


app = _typer(name="filetier", help="A content-addressed, three-tier file store for LLM agents.")
db_app = _typer(help="Metadata database commands.")
app.add_typer(db_app, name="db")


class _LazyConsole:
    """A rich Console made on first use: importing rich costs what a short command saves."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The console itself, for what needs the real object (a ``with`` block)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(soft_wrap=True, **self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


out: Console = _LazyConsole()  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class _State:
    home: Path | None = None
    owner: str | None = None
    verbose: bool = False


state = _State()


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"filetier {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    home: Annotated[
        Path | None, typer.Option("--home", help="Data directory (overrides FILETIER_HOME).")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Act as this owner (overrides FILETIER_OWNER; default: 'default'). A token "
            "made with `token create NAME` sees the files of owner NAME only.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log to stderr.")] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state.home = home
    state.owner = owner
    state.verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # stamina logs each scheduled retry as a WARNING; a retry that may still succeed is
    # not news for a CLI user (a final failure is printed as the error; -v shows retries).
    logging.getLogger("stamina").setLevel(logging.INFO if verbose else logging.ERROR)
    logsafe.install_on_root()


def _overrides() -> dict[str, Any]:
    from filetier.tokens import check_owner_name

    overrides: dict[str, Any] = {}
    if state.home is not None:
        overrides["home"] = state.home
    if state.owner is not None:
        overrides["owner"] = check_owner_name(state.owner)
    return overrides


def build_settings() -> Settings:
    from filetier.config import Settings
    from filetier.tokens import check_owner_name

    overrides = _overrides()
    settings = Settings(**overrides)
    check_owner_name(settings.owner)
    if settings.allowed_roots_raw is None:
        # A person at a shell may write into the directory they are in; agents and
        # servers get only the configured roots.
        roots = os.pathsep.join([str(settings.downloads_dir), str(Path.cwd())])
        settings = Settings(**overrides, allowed_roots_raw=roots)
    return settings


def run(job: Callable[[FileStore], Awaitable[T]]) -> T:
    from filetier.store import FileStore

    async def main() -> T:
        async with FileStore(build_settings()) as store:
            return await job(store)

    import asyncio

    return asyncio.run(main())


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        data: Any = value
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
        elif isinstance(value, list):
            data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        out.print(value)


def line(text: str) -> None:
    """One plain line on stdout: what ``out.print(markup=False, highlight=False)`` prints
    for text, without importing rich (~20 ms of a short command such as ``stat``)."""
    sys.stdout.write(text + "\n")


def error_body(kind: str, message: str, exit_code: int) -> dict[str, Any]:
    """An error as ``--json`` prints it on stderr: the HTTP API's shape plus the exit code."""
    return {"error": {"type": kind, "message": message, "exit_code": exit_code}}


def describe(exc: FiletierError) -> dict[str, Any]:
    return error_body(type(exc).__name__, str(exc), mapping_for(exc).exit_code)


def notice(message: str, as_json: bool, **fields: Any) -> None:
    """A note for the person at the terminal, on stderr (stdout may carry a protocol)."""
    if as_json:
        sys.stderr.write(json.dumps({"notice": message, **fields}, default=str) + "\n")
    else:
        err.print(message, markup=False, highlight=False)


def print_columns(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
    """Rows padded into columns, never cut: ids stay whole at any terminal width (a
    narrow terminal wraps the line instead). The last column is not padded, so a long
    name or path goes last."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        cells = [
            cell
            if i == len(r) - 1
            else (cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
            for i, cell in enumerate(r)
        ]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


_ID_PREFIX_RE = re.compile(r"[0-9a-fA-F-]+")


async def resolve_id(store: FileStore, text: str) -> UUID | str:
    """A whole id, the id a unique prefix stands for (this owner's files only), or the
    text as given: a provider file id (``file-…``) the store resolves, or garbage it
    refuses with a clear message."""
    from filetier.store import parse_file_id

    try:
        return parse_file_id(text)
    except InvalidFileIdError:
        pass
    if _ID_PREFIX_RE.fullmatch(text.strip()):
        return await store.resolve_file_id(text)
    return text


@contextmanager
def transfer_bar(
    description: str, total: int | None, enabled: bool
) -> Iterator[Callable[[int], None] | None]:
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _BytesColumn(ProgressColumn):
        """Bytes done / total, in the binary units every other size is printed in."""

        def render(self, task: Task) -> Text:
            done = human(int(task.completed))
            return Text(f"{done} / {human(int(task.total))}" if task.total is not None else done)

    class _SpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{human(int(speed))}/s")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _BytesColumn(),
        _SpeedColumn(),
        TimeRemainingColumn(),
        console=err.get() if isinstance(err, _LazyConsole) else err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def human(size: int) -> str:
    """Sizes in binary units (KiB, MiB, ...), the one convention of every CLI output."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


# -- commands -----------------------------------------------------------------------------


def _batch_exit_code(failures: list[FiletierError]) -> None:
    """A batch reports every item, then exits with the first failure's code."""
    if failures:
        raise typer.Exit(mapping_for(failures[0]).exit_code)


@app.command()
def upload(
    paths: Annotated[
        list[str], typer.Argument(help="Files to store; - reads standard input (with --name).")
    ],
    name: Annotated[str | None, typer.Option(help="Filename to record (one file only).")] = None,
    mime: Annotated[
        str | None, typer.Option(help="MIME type, used when sniffing is inconclusive.")
    ] = None,
    meta: Annotated[str | None, typer.Option(help="JSON object stored with the file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store files; identical bytes are kept once. Each file is reported (its id, or
    why it failed); the exit code is non-zero if any failed."""
    if name is not None and len(paths) > 1:
        raise typer.BadParameter("--name applies to a single file")
    if "-" in paths and (len(paths) > 1 or name is None):
        raise typer.BadParameter("- (standard input) is uploaded alone and needs --name")
    metadata = None
    if meta is not None:
        try:
            metadata = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--meta is not valid JSON: {exc.msg}") from None

    async def one(store: FileStore, source: str) -> Any:
        if source == "-":
            with transfer_bar(f"upload {name}", None, not as_json) as progress:
                return await store.upload_file(
                    sys.stdin.buffer,
                    filename=name,
                    mime_type=mime,
                    metadata=metadata,
                    progress=progress,
                )
        path = Path(source)
        total = path.stat().st_size if path.is_file() else None
        with transfer_bar(f"upload {path.name}", total, not as_json) as progress:
            return await store.upload_file(
                path, filename=name, mime_type=mime, metadata=metadata, progress=progress
            )

    async def job(store: FileStore) -> list[Any]:
        results: list[Any] = []
        for source in paths:
            try:
                results.append(await one(store, source))
            except FiletierError as exc:
                results.append(exc)
            result = results[-1]
            if len(paths) > 1 and not as_json:
                # Reported as each finishes, so an interrupted batch still shows its ids.
                if isinstance(result, FiletierError):
                    err.print(f"error: {source}: {result}", markup=False, highlight=False)
                else:
                    _print_upload(result)
        return results

    results = run(job)
    failures = [r for r in results if isinstance(r, FiletierError)]
    if len(paths) == 1:
        if failures:
            raise failures[0]
        if as_json:
            emit(results[0], True)
        else:
            _print_upload(results[0])
        return
    if as_json:
        emit(
            [
                {"source": src}
                | (describe(r) if isinstance(r, FiletierError) else r.model_dump(mode="json"))
                for src, r in zip(paths, results, strict=True)
            ],
            True,
        )
    _batch_exit_code(failures)


def _print_upload(r: Any) -> None:
    note = " (already stored: no bytes written)" if r.deduplicated else ""
    out.print(
        f"{r.file_id}  {r.filename}  {human(r.size)}  {r.mime_type}  sha256:{r.sha256[:16]}…{note}",
        markup=False,
        highlight=False,
    )


@app.command()
def download(
    file_id: Annotated[
        str, typer.Argument(help="File id, a unique prefix, or a provider file id.")
    ],
    dest: Annotated[
        str | None,
        typer.Option(
            "--dest",
            "-o",
            help="Destination file, or directory (an existing one, or any path ending in /).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a different file already at --dest.")
    ] = False,
    cleanup: Annotated[
        str | None,
        typer.Option(help="For the downloads folder: retain (default), immediate or keep."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a stored file to a destination inside the allowed roots.

    An existing file with other content is left alone unless --force is given; the same
    content already there is a no-op."""
    if cleanup not in (None, "retain", "immediate", "keep"):
        raise typer.BadParameter("--cleanup must be retain, immediate or keep")
    policy: CleanupPolicy | None = cleanup  # type: ignore[assignment]
    destination = _cli_destination(dest) if dest is not None else None

    async def job(store: FileStore) -> Any:
        fid = await resolve_id(store, file_id)
        record = await store.stat(fid)
        with transfer_bar(f"download {record.filename}", record.size, not as_json) as progress:
            return await store.download(
                fid, destination, cleanup=policy, progress=progress, overwrite=force
            )

    result = run(job)
    if as_json:
        emit(result, True)
    else:
        out.print(
            f"{result.path}  ({human(result.size)}, from {result.tier}, sha256 verified)",
            markup=False,
            highlight=False,
        )


def _cli_destination(dest: str) -> str:
    """``dest`` made absolute from the shell's directory, keeping a trailing separator:
    ``newdir/`` means "into newdir" even before newdir exists (``Path`` would drop it)."""
    absolute = str(Path(dest).expanduser().absolute())
    into_dir = dest in {".", "~"} or dest.endswith(("/", os.sep, "/.", f"{os.sep}."))
    return absolute.rstrip(os.sep) + os.sep if into_dir else absolute


@app.command("ls")
def list_files(
    name: Annotated[str | None, typer.Option(help="Filename contains.")] = None,
    mime: Annotated[str | None, typer.Option("--type", help="MIME type, e.g. image/*.")] = None,
    sha256: Annotated[str | None, typer.Option(help="Exact SHA-256.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List stored files, newest first (whole ids; any unique prefix of one is accepted
    where an id is taken)."""
    page = run(
        lambda s: s.list(
            name_contains=name, mime_type=mime, sha256=sha256, limit=limit, offset=offset
        )
    )
    if as_json:
        emit(page, True)
        return
    print_columns(
        ("file id", "uploaded", "size", "type", "name"),
        [
            (
                str(r.file_id),
                f"{r.upload_date:%Y-%m-%d %H:%M}",
                human(r.size),
                r.mime_type,
                r.filename,
            )
            for r in page.items
        ],
        right={2},
    )
    more = f", next: --offset {page.next_offset}" if page.next_offset is not None else ""
    # Plain write, not rich: importing rich would cost this short command ~20 ms.
    sys.stderr.write(f"{len(page.items)} of {page.total} files{more}\n")


@app.command("stat")
def stat_file(
    file_id: Annotated[str, typer.Argument(help="File id or a unique prefix of it.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a file's metadata, and its provider copies with the life each has left."""

    async def job(store: FileStore) -> tuple[FileRecord, Sequence[ProviderCopyInfo]]:
        record = await store.stat(await resolve_id(store, file_id))
        return record, await store.provider_copies(record.file_id)

    record, copies = run(job)
    if as_json:
        emit(
            record.model_dump(mode="json")
            | {"provider_copies": [c.model_dump(mode="json") for c in copies]},
            True,
        )
        return
    for key, value in record.model_dump(mode="json").items():
        if value is None or value == "":
            shown = "-"
        elif isinstance(value, dict | list):
            shown = json.dumps(value, ensure_ascii=False) if value else "-"
        elif key in {"size", "file_size"} and isinstance(value, int):
            shown = f"{value} bytes ({human(value)})"
        else:
            shown = str(value)
        line(f"{key:>18}: {shown}")
    for c in copies:
        line(f"{'provider copy':>18}: {c.provider} {c.purpose} {c.provider_file_id} {life(c)}")


@app.command("rm")
def remove(
    file_ids: Annotated[list[str], typer.Argument(help="File ids (or unique prefixes) to delete.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete files; their bytes go when no other file shares them. Each id is reported;
    the exit code is non-zero if any failed."""

    async def job(store: FileStore) -> list[Any]:
        results: list[Any] = []
        for text in file_ids:
            try:
                results.append(await store.delete(await resolve_id(store, text)))
            except FiletierError as exc:
                results.append(exc)
        return results

    results = run(job)
    failures = [r for r in results if isinstance(r, FiletierError)]
    if len(file_ids) == 1 and failures:
        raise failures[0]
    if as_json:
        emit(
            [
                {"file_id": text} | describe(r) if isinstance(r, FiletierError) else r
                for text, r in zip(file_ids, results, strict=True)
            ],
            True,
        )
    else:
        for text, r in zip(file_ids, results, strict=True):
            if isinstance(r, FiletierError):
                err.print(f"error: {text}: {r}", markup=False, highlight=False)
                continue
            note = "bytes removed" if r.blob_deleted else "bytes kept (shared with another file)"
            out.print(f"deleted {r.file_id} ({note})", markup=False, highlight=False)
    _batch_exit_code(failures)


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


def life(copy: ProviderCopyInfo) -> str:
    """``47h 59m left``, ``expired`` or ``no expiry``."""
    if copy.remaining_seconds is None:
        return "no expiry"
    if copy.status == "expired" or copy.remaining_seconds <= 0:
        return "expired"
    minutes = int(copy.remaining_seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m left"


@app.command()
def history(
    file_id: Annotated[
        str | None, typer.Argument(help="Only this file (id or a unique prefix).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Recent downloads: when, where to, which tier served them."""

    async def job(store: FileStore) -> Any:
        fid = None
        if file_id is not None:
            # An unknown id is "not found" (exit 4), as for stat, not an empty history.
            fid = (await store.stat(await resolve_id(store, file_id))).file_id
        return await store.history(fid, limit=limit)

    events = run(job)
    if as_json:
        emit(list(events), True)
        return
    print_columns(
        ("when", "file id", "tier", "bytes", "ms", "destination"),
        [
            (
                f"{e.downloaded_at:%Y-%m-%d %H:%M:%S}",
                str(e.file_id),
                e.tier,
                human(e.bytes),
                f"{e.duration_ms:.1f}",
                e.destination_path or "-",
            )
            for e in events
        ],
        right={3, 4},
    )


@app.command("provider-id")
def provider_id(
    file_id: Annotated[str, typer.Argument(help="File id.")],
    provider: Annotated[str, typer.Argument(help="kimi, glm, openai, anthropic or mistral.")],
    purpose: Annotated[str, typer.Option(help="Upload purpose.")] = "file-extract",
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the id with the provider.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The provider's file id for a file, uploading it there at most once."""

    async def job(store: FileStore) -> Any:
        fid = await resolve_id(store, file_id)
        return await store.get_provider_file_id(fid, provider, purpose, verify=verify)

    result = run(job)
    if as_json:
        emit(result, True)
    else:
        note = "uploaded now" if result.uploaded else "already there: nothing sent"
        out.print(f"{result.provider_file_id}  ({result.provider}, {result.purpose}, {note})")


@app.command()
def text(
    file_id: Annotated[str, typer.Argument(help="File id.")],
    provider: Annotated[str, typer.Argument(help="kimi, glm, openai, anthropic or mistral.")],
    as_json: JsonFlag = False,
) -> None:
    """The provider's extracted text of a file (cached; never the original bytes)."""

    async def job(store: FileStore) -> Any:
        return await store.get_file_text(await resolve_id(store, file_id), provider)

    result = run(job)
    if as_json:
        emit(result, True)
    else:
        sys.stdout.write(result.text + ("" if result.text.endswith("\n") else "\n"))


@app.command()
def ask(
    args: Annotated[list[str], typer.Argument(help="FILE_ID... QUESTION")],
    provider: Annotated[
        str, typer.Option("--provider", "-p", help="kimi, glm, openai, anthropic or mistral.")
    ],
    model: Annotated[str | None, typer.Option(help="Model (default: the provider's).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask a question about one or more files: `filetier ask ID... -p kimi "question"`."""
    if len(args) < 2:
        raise typer.BadParameter("give at least one file id and then the question")
    *file_ids, question = args

    async def job(store: FileStore) -> Any:
        fids = [await resolve_id(store, text) for text in file_ids]
        return await store.ask_file(fids, question, provider, model)

    result = run(job)
    if as_json:
        emit(result, True)
    else:
        out.print(result.answer, markup=False, highlight=False)


providers_app = _typer(help="Provider file records.")
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


token_app = _typer(help="API tokens for the HTTP API and MCP over HTTP.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    owner: Annotated[str, typer.Argument(help="Owner the token acts for.")],
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token; it is printed once and only its hash is stored. The token sees
    only OWNER's files: files stored by the CLI belong to owner `default` unless it runs
    with `--owner OWNER` (or FILETIER_OWNER=OWNER)."""
    from filetier.tokens import TokenAuthority, check_owner_name

    check_owner_name(owner)
    token = run(lambda s: TokenAuthority(s.settings, s.db).create(owner, name))
    if as_json:
        emit({"owner": owner, "name": name, "token": token}, True)
        return
    sys.stdout.write(token + "\n")
    cli_owner = build_settings().owner
    where = (
        "the CLI stores files as this owner too"
        if cli_owner == owner
        else f"files the CLI stores belong to owner {cli_owner} and stay invisible to it, "
        f"unless the CLI runs with --owner {owner} (or FILETIER_OWNER={owner})"
    )
    notice(
        f"token for owner {owner}, shown once (only its hash is stored). It sees only "
        f"{owner}'s files; {where}.",
        False,
    )


@token_app.command("list")
def token_list(as_json: JsonFlag = False) -> None:
    """Tokens created with `token create` (owner, label, hash prefix)."""
    from filetier.tokens import TokenAuthority

    tokens = run(lambda s: TokenAuthority(s.settings, s.db).list())
    if as_json:
        emit(
            [{"owner": t.owner, "name": t.name, "hash": t.token_hash_prefix} for t in tokens], True
        )
        return
    for t in tokens:
        out.print(f"{t.token_hash_prefix}  {t.owner}  {t.name or ''}", markup=False)


@token_app.command("revoke")
def token_revoke(
    hash_prefix: Annotated[str, typer.Argument(help="Hash prefix from `token list`.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke tokens whose hash starts with the given prefix (8+ hex digits)."""
    from filetier.tokens import TokenAuthority

    count = run(lambda s: TokenAuthority(s.settings, s.db).revoke(hash_prefix))
    if as_json:
        emit({"revoked": count}, True)
    else:
        out.print(f"revoked {count} token(s)")


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


NO_TOKEN_MESSAGE = (
    "no API token: on this machine only, run `filetier serve --no-auth` (loopback); "  # noqa: S105 - advice, not a token
    "otherwise create one with `filetier token create NAME` (it sees owner NAME's files) "
    "or set FILETIER_API_TOKENS=NAME:TOKEN"
)


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Startup notes and errors as JSON lines on stderr.")
    ] = False,
) -> None:
    """Serve the HTTP API and MCP (streamable HTTP at /mcp) on one port."""
    settings = build_server_settings(allow_no_auth=True) if no_auth else build_server_settings()
    if stdio:
        _serve_stdio(settings, as_json)
        return
    from filetier.interfaces.http.runtime import AUTH_REQUIRED_MESSAGE
    from filetier.interfaces.serve import run as run_server

    bind_host, bind_port = host or settings.http_host, port or settings.http_port
    _data_notice(settings, as_json)
    if no_auth:
        notice(
            f"no tokens (--no-auth): every request acts as owner {settings.owner!r}",
            as_json,
            owner=settings.owner,
        )
    try:
        run_server(settings, bind_host, bind_port)
    except ConfigError as exc:
        if str(exc) == AUTH_REQUIRED_MESSAGE:
            raise ConfigError(NO_TOKEN_MESSAGE) from None
        raise


def _data_notice(settings: Settings, as_json: bool) -> None:
    """Where the files and their records live, said once at startup."""
    view = settings.public_view()
    notice(
        f"data in {settings.home} (database {view['database_url']}; objects {view['primary_url']})",
        as_json,
        home=str(settings.home),
        database_url=view["database_url"],
        primary=view["primary_url"],
    )


def _serve_stdio(settings: Settings, as_json: bool) -> None:
    from filetier.interfaces.mcp.server import run_stdio

    if sys.stdin.isatty():
        # Launched by hand: without this it would sit silent, waiting for JSON-RPC.
        notice(
            "filetier mcp: waiting for an MCP client on stdin (MCP clients start this "
            "command themselves; Ctrl-D or Ctrl-C to stop)",
            as_json,
        )
        _data_notice(settings, as_json)
    run_stdio(settings)


@app.command()
def mcp(
    as_json: Annotated[
        bool, typer.Option("--json", help="Notes and errors as JSON lines on stderr.")
    ] = False,
) -> None:
    """Serve MCP over stdio, for clients that launch their servers (logs go to stderr)."""
    _serve_stdio(build_server_settings(), as_json)


def build_server_settings(**extra: Any) -> Settings:
    """Servers get only the configured roots: no current-directory convenience."""
    from filetier.config import Settings
    from filetier.tokens import check_owner_name

    settings = Settings(**(_overrides() | extra))
    check_owner_name(settings.owner)
    # Refused here too (build_server checks again) so the refusal is the only line printed,
    # before any startup note.
    settings.refuse_roots_over_the_store()
    return settings


@app.command()
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


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` was given (before a ``--``), known even when parsing fails."""
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _report(kind: str, message: str, code: int, as_json: bool) -> int:
    if as_json:
        sys.stderr.write(json.dumps(error_body(kind, message, code)) + "\n")
    else:
        err.print(f"error: {message}", markup=False, highlight=False)
    return code


def _usage_error(exc: typer.TyperException, as_json: bool) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and not as_json:
        # A bare `filetier` (or `filetier token`): the help, as the user asked for nothing.
        sys.stderr.write(exc.format_message() + "\n")
        return exc.exit_code
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return _report(type(exc).__name__, exc.format_message() + hint, exc.exit_code, as_json)


def _unexpected(exc: Exception, as_json: bool) -> int:
    # pydantic is imported here, not at the top: a ValidationError means it is loaded.
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from filetier.config import Settings

        first = exc.errors()[0]
        where = Settings.env_name(str(first["loc"][0])) if first["loc"] else ""
        message = f"invalid setting {where}: {first['msg']}"
        return _report("ConfigError", message, mapping_for(ConfigError).exit_code, as_json)
    # A bug, not a user error: one line all the same; the traceback only with -v.
    if state.verbose:
        traceback.print_exc()
    return _report(
        type(exc).__name__,
        f"unexpected {type(exc).__name__}: {exc} (a bug; -v shows the traceback)",
        1,
        as_json,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, flush, and leave without interpreter finalisation."""
    args = sys.argv[1:] if argv is None else argv
    as_json = _wants_json(args)
    code = 0
    try:
        returned = app(args=args, standalone_mode=False)
        # Without standalone mode click returns an explicit typer.Exit's code.
        code = returned if isinstance(returned, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FiletierError as exc:
        code = _report(type(exc).__name__, str(exc), mapping_for(exc).exit_code, as_json)
    except typer.TyperException as exc:
        code = _usage_error(exc, as_json)
    except (KeyboardInterrupt, typer.Abort):
        code = _report("Interrupted", "interrupted", 130, as_json)
    except Exception as exc:  # noqa: BLE001 - the last resort of the entry point
        code = _unexpected(exc, as_json)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
