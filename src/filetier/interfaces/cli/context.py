"""What every command shares: the typer factory, the global options, settings, and one
store per command run.

Only typer and the standard library load at import: `filetier --help` and `--version`
answer without SQLAlchemy, pydantic or rich (~0.5 s on a small machine); each command
imports what it uses.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from filetier.errors import InvalidFileIdError

if TYPE_CHECKING:
    from uuid import UUID

    from filetier.config import Settings
    from filetier.store import FileStore

T = TypeVar("T")


def make_typer(**kwargs: Any) -> typer.Typer:
    # Plain (click) help: typer's rich help shows every boolean flag as taking a value
    # ("--json <bool>"), which it does not.
    return typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        **kwargs,
    )


JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class _State:
    home: Path | None = None
    owner: str | None = None
    verbose: bool = False


state = _State()


def _overrides() -> dict[str, Any]:
    from filetier.ids import check_owner_name

    overrides: dict[str, Any] = {}
    if state.home is not None:
        overrides["home"] = state.home
    if state.owner is not None:
        overrides["owner"] = check_owner_name(state.owner)
    return overrides


def build_settings() -> Settings:
    from filetier.config import Settings
    from filetier.ids import check_owner_name

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


def build_server_settings(**extra: Any) -> Settings:
    """Servers get only the configured roots: no current-directory convenience."""
    from filetier.config import Settings
    from filetier.ids import check_owner_name

    settings = Settings(**(_overrides() | extra))
    check_owner_name(settings.owner)
    # Refused here too (build_server checks again) so the refusal is the only line printed,
    # before any startup note.
    settings.refuse_roots_over_the_store()
    return settings


async def resolve_id(store: FileStore, text: str) -> UUID | str:
    """A whole id, the id a unique prefix stands for (this owner's files only), or the
    text as given: a provider file id (``file-…``) the store resolves, or garbage it
    refuses with a clear message."""
    from filetier.ids import looks_like_prefix, parse_file_id

    try:
        return parse_file_id(text)
    except InvalidFileIdError:
        pass
    if looks_like_prefix(text):
        return await store.resolve_file_id(text)
    return text
