"""File commands: ``upload``, ``download``, ``ls``, ``stat``, ``rm`` and ``history``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from filetier.errors import FiletierError
from filetier.interfaces.cli.context import JsonFlag, resolve_id, run
from filetier.interfaces.cli.output import (
    describe,
    emit,
    err,
    exit_code_of,
    human,
    life,
    line,
    out,
    print_columns,
    print_file_page,
    print_record,
    transfer_bar,
)

if TYPE_CHECKING:
    from filetier.models import CleanupPolicy, FileRecord, ProviderCopyInfo
    from filetier.store import FileStore


def _batch_exit_code(failures: list[FiletierError]) -> None:
    """A batch reports every item, then exits with the first failure's code."""
    if failures:
        raise typer.Exit(exit_code_of(failures[0]))


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
    print_file_page(
        [(str(r.file_id), r.upload_date, r.size, r.mime_type, r.filename) for r in page.items],
        page.total,
        page.next_offset,
    )


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
    print_record(record.model_dump(mode="json"))
    for c in copies:
        line(f"{'provider copy':>18}: {c.provider} {c.purpose} {c.provider_file_id} {life(c)}")


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
