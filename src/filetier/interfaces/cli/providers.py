"""Provider commands: ``provider-id``, ``text``, ``ask`` and ``providers sync``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from filetier.interfaces.cli.context import JsonFlag, make_typer, resolve_id, run
from filetier.interfaces.cli.output import emit, out

if TYPE_CHECKING:
    from filetier.store import FileStore


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


providers_app = make_typer(help="Provider file records.")


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
