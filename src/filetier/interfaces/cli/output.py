"""How the CLI prints: plain lines, padded columns, JSON, sizes, progress bars, errors.

Rich is imported only by what needs it (a table, a progress bar, markup): short commands
such as ``stat`` and ``ls`` print with ``sys.stdout.write`` and save its import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from filetier.errors import FiletierError, mapping_for

if TYPE_CHECKING:
    from rich.console import Console

    from filetier.models import ProviderCopyInfo


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


def exit_code_of(exc: FiletierError | type[FiletierError]) -> int:
    """The exit code of an error: the CLI column of :data:`filetier.errors.ERROR_TABLE`,
    looked up here only, for single commands and batches alike."""
    return mapping_for(exc).exit_code


def emit(value: Any, as_json: bool) -> None:
    if as_json:
        data: Any = value
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            data = value.model_dump(mode="json")
        elif isinstance(value, list):
            data = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        json_out(data)
    else:
        out.print(value)


def json_out(data: Any) -> None:
    """JSON data (no models) as every ``--json`` result is printed on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def line(text: str) -> None:
    """One plain line on stdout: what ``out.print(markup=False, highlight=False)`` prints
    for text, without importing rich (~20 ms of a short command such as ``stat``)."""
    sys.stdout.write(text + "\n")


def error_body(kind: str, message: str, exit_code: int) -> dict[str, Any]:
    """An error as ``--json`` prints it on stderr: the HTTP API's shape plus the exit code."""
    return {"error": {"type": kind, "message": message, "exit_code": exit_code}}


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` was given (before a ``--``), known even when parsing fails."""
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def report(kind: str, message: str, code: int, as_json: bool) -> int:
    """A command's failure as the user sees it, on stderr; returns the exit code."""
    if as_json:
        sys.stderr.write(json.dumps(error_body(kind, message, code)) + "\n")
    else:
        err.print(f"error: {message}", markup=False, highlight=False)
    return code


def describe(exc: FiletierError) -> dict[str, Any]:
    return error_body(type(exc).__name__, str(exc), exit_code_of(exc))


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


def print_file_page(
    rows: Sequence[tuple[str, datetime, int, str, str]], total: int, next_offset: int | None
) -> None:
    """``ls``: (id, uploaded, size, type, name) in columns, then the count on stderr."""
    print_columns(
        ("file id", "uploaded", "size", "type", "name"),
        [
            (fid, f"{uploaded:%Y-%m-%d %H:%M}", human(size), mime, name)
            for fid, uploaded, size, mime, name in rows
        ],
        right={2},
    )
    more = f", next: --offset {next_offset}" if next_offset is not None else ""
    # Plain write, not rich: importing rich would cost this short command ~20 ms.
    sys.stderr.write(f"{len(rows)} of {total} files{more}\n")


def print_record(fields: dict[str, Any]) -> None:
    """``stat``: a file record in its JSON form, one field a line."""
    for key, value in fields.items():
        if value is None or value == "":
            shown = "-"
        elif isinstance(value, dict | list):
            shown = json.dumps(value, ensure_ascii=False) if value else "-"
        elif key in {"size", "file_size"} and isinstance(value, int):
            shown = f"{value} bytes ({human(value)})"
        else:
            shown = str(value)
        line(f"{key:>18}: {shown}")


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


def life(copy: ProviderCopyInfo) -> str:
    """``47h 59m left``, ``expired`` or ``no expiry``."""
    if copy.remaining_seconds is None:
        return "no expiry"
    if copy.status == "expired" or copy.remaining_seconds <= 0:
        return "expired"
    minutes = int(copy.remaining_seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m left"
