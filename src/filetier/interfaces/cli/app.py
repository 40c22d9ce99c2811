"""The ``filetier`` command: parse, call FileStore, print; no business logic here.

Errors become one actionable line on stderr and the exit code of
:data:`filetier.errors.ERROR_TABLE` (its docstring lists every code). ``--json`` prints
machine-readable results on stdout, and errors as one JSON object on stderr. Wherever a
file id is taken, a unique prefix of it is accepted (as git takes commit prefixes),
searched among the acting owner's files only. The CLI acts as one owner: ``--owner`` or
``FILETIER_OWNER``, else ``default``.
The process leaves through ``os._exit`` after flushing: obstore's Rust runtime can abort
the interpreter during normal finalisation (exit code 134) in short-lived commands.

This module is the entry: the global options, the command list in the order ``--help``
shows it, and the one place errors become exit codes. The installed script enters
through ``front.py``, which answers ``--version`` and, through ``quick.py``, ``stat`` and
``ls`` on the embedded default without loading this module, when it can give the same
answer. The commands live by group::

    context.py      shared options, settings, one store per command, id prefixes
    output.py       printing: lines, columns, JSON, sizes, progress bars
    files.py        upload, download, ls, stat, rm, history
    maintenance.py  verify, cleanup, gc, stats, doctor, db upgrade
    providers.py    provider-id, text, ask, providers sync
    tokens.py       token create / list / revoke
    servers.py      serve, mcp
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from filetier import __version__, logsafe
from filetier.errors import FiletierError
from filetier.interfaces.cli import files, maintenance, providers, servers, tokens
from filetier.interfaces.cli.context import make_typer, state
from filetier.interfaces.cli.output import exit_code_of, report, wants_json

app = make_typer(name="filetier", help="A content-addressed, three-tier file store for LLM agents.")


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


# The order --help lists them in: commands, then the groups.
app.command()(files.upload)
app.command()(files.download)
app.command("ls")(files.list_files)
app.command("stat")(files.stat_file)
app.command("rm")(files.remove)
app.command()(maintenance.verify)
app.command()(maintenance.cleanup)
app.command()(maintenance.gc)
app.command()(maintenance.stats)
app.command()(files.history)
app.command("provider-id")(providers.provider_id)
app.command()(providers.text)
app.command()(providers.ask)
app.command()(servers.serve)
app.command()(servers.mcp)
app.command()(maintenance.doctor)
app.add_typer(maintenance.db_app, name="db")
app.add_typer(providers.providers_app, name="providers")
app.add_typer(tokens.token_app, name="token")


def _usage_error(exc: typer.TyperException, as_json: bool) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and not as_json:
        # A bare `filetier` (or `filetier token`): the help, as the user asked for nothing.
        sys.stderr.write(exc.format_message() + "\n")
        return exc.exit_code
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return report(type(exc).__name__, exc.format_message() + hint, exc.exit_code, as_json)


def _unexpected(exc: Exception, as_json: bool) -> int:
    # pydantic is imported here, not at the top: a ValidationError means it is loaded.
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        from filetier.config import Settings
        from filetier.errors import ConfigError

        first = exc.errors()[0]
        where = Settings.env_name(str(first["loc"][0])) if first["loc"] else ""
        message = f"invalid setting {where}: {first['msg']}"
        return report("ConfigError", message, exit_code_of(ConfigError), as_json)
    # A bug, not a user error: one line all the same; the traceback only with -v.
    if state.verbose:
        traceback.print_exc()
    return report(
        type(exc).__name__,
        f"unexpected {type(exc).__name__}: {exc} (a bug; -v shows the traceback)",
        1,
        as_json,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, flush, and leave without interpreter finalisation."""
    args = sys.argv[1:] if argv is None else argv
    as_json = wants_json(args)
    code = 0
    try:
        returned = app(args=args, standalone_mode=False)
        # Without standalone mode click returns an explicit typer.Exit's code; Typer turns
        # Ctrl-C into Exit(130), which is said like every other failure.
        code = returned if isinstance(returned, int) else 0
        if code == 130:
            code = report("Interrupted", "interrupted", 130, as_json)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FiletierError as exc:
        code = report(type(exc).__name__, str(exc), exit_code_of(exc), as_json)
    except typer.TyperException as exc:
        code = _usage_error(exc, as_json)
    except (KeyboardInterrupt, typer.Abort):
        code = report("Interrupted", "interrupted", 130, as_json)
    except Exception as exc:  # noqa: BLE001 - the last resort of the entry point
        code = _unexpected(exc, as_json)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
