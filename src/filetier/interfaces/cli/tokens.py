"""``filetier token``: API tokens for the HTTP API and MCP over HTTP."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from filetier.interfaces.cli.context import JsonFlag, build_settings, make_typer, run
from filetier.interfaces.cli.output import emit, notice, out

token_app = make_typer(help="API tokens for the HTTP API and MCP over HTTP.")


@token_app.command("create")
def token_create(
    owner: Annotated[str, typer.Argument(help="Owner the token acts for.")],
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token; it is printed once and only its hash is stored. The token sees
    only OWNER's files: files stored by the CLI belong to owner `default` unless it runs
    with `--owner OWNER` (or FILETIER_OWNER=OWNER)."""
    from filetier.ids import check_owner_name
    from filetier.tokens import TokenAuthority

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
