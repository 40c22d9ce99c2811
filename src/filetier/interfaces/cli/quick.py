"""The quick path of ``filetier stat ID`` and ``filetier ls``: the normal path's answer,
byte for byte, without loading typer, pydantic or SQLAlchemy.

Agents run these two most, and the normal path spends most of ~0.4 s importing what
opening a store needs. On the embedded default (SQLite in the data dir, the local
primary) their answer is a read of the SQLite file, which the standard library makes in
milliseconds. :func:`answer` makes it when it can be certain the answer is the normal
path's, and otherwise returns None having printed nothing: the caller then runs the
normal path. It takes only::

    filetier [--home DIR] [--owner NAME] ls [--name TEXT] [--type TYPE] [--sha256 HEX]
                                            [--limit N] [--offset N] [--json]
    filetier [--home DIR] [--owner NAME] stat ID [--json]

each option at most once, as ``--opt value`` or ``--opt=value``. It leaves to the normal
path anything else: other arguments (``--help``, ``-v``, a value starting with ``-``, a
number out of range), any setting in the environment but ``FILETIER_HOME``,
``FILETIER_OWNER`` and providers' keys, URLs and models, a ``.env`` file (pydantic-settings reads it), a data dir in which
opening the store would create something (a directory, the database, its tables) or
migrate the schema, a database not in WAL mode, a provider file id, a file with provider
copies, a stored value :mod:`filetier.metadata.sqlite_reads` does not decode with
certainty, and any SQLite or OS error.

The rules stay where they are owned, so the two paths cannot drift apart: ids, prefixes
and owner names in :mod:`filetier.ids`, the queries in
:mod:`filetier.metadata.sqlite_reads` (checked against the repository's), the head
revision in :mod:`filetier.metadata.revisions`, printing, errors and exit codes in
:mod:`.output`. ``tests/test_cli_quick.py`` runs both paths on the same stores and
compares stdout, stderr and exit code.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from filetier.errors import FiletierError, InvalidFileIdError
from filetier.ids import (
    PROVIDER_FILE_ID_RE,
    check_owner_name,
    looks_like_prefix,
    no_such_file,
    one_match,
    parse_file_id,
    prefix_range,
)
from filetier.interfaces.cli.output import (
    exit_code_of,
    json_out,
    print_file_page,
    print_record,
    report,
    wants_json,
)
from filetier.metadata import sqlite_reads
from filetier.metadata.revisions import quick_head_revision

# Settings read from the environment without the FILETIER_ prefix (lower case: the lookup
# ignores case). Any of them, or any FILETIER_ name but the two below, sends a command to
# the normal path; tests/test_cli_quick.py checks this covers every name Settings reads.
UNPREFIXED_SETTINGS = frozenset(
    {
        "anthropic_api_key",
        "anthropic_base_url",
        "database_url",
        "file_cache_dir",
        "gemini_api_key",
        "gemini_base_url",
        "glm_api_key",
        "glm_base_url",
        "kimi_api_key",
        "kimi_base_url",
        "max_cache_age_days",
        "max_cache_size_mb",
        "max_memory_cache_size",
        "mistral_api_key",
        "mistral_base_url",
        "openai_api_key",
        "openai_base_url",
        "supabase_key",
        "supabase_service_key",
        "supabase_url",
    }
)
HANDLED_SETTINGS = ("filetier_home", "filetier_owner")
# Provider keys, endpoints and models: plain strings no value of which is refused (a test
# checks their fields have no constraint or validator), for clients a store makes only
# when a provider is asked for. Agents' shells often hold them; they change neither answer.
_PROVIDERS = ("anthropic", "gemini", "glm", "kimi", "mistral", "openai")
INERT_SETTINGS = frozenset(
    f"{prefix}{provider}_{what}"
    for provider in _PROVIDERS
    for what in ("api_key", "base_url", "model")
    for prefix in ("", "filetier_")
) - {f"{provider}_model" for provider in _PROVIDERS}
#: What opening the embedded store creates in the data dir, beside the database: when one
#: is missing the normal path makes it (the test compares with a store it opened).
STORE_DIRS = ("objects/.staging", "cache/sha256", "cache/tmp", "cache/locks")
# catalog.LIST_OFFSET_MAX (a test checks they agree): larger offsets are refused there.
_OFFSET_MAX = 10**12
_GLOBAL_OPTIONS = frozenset({"--home", "--owner"})
_COMMAND_OPTIONS = {
    "ls": frozenset({"--name", "--type", "--sha256", "--limit", "--offset"}),
    "stat": frozenset(),
}
_DIGITS_RE = re.compile(r"[0-9]+")


class _Fallback(Exception):
    """Not certain to answer as the normal path would: leave the command to it."""


class _Request:
    # A plain class: dataclasses (with inspect) would cost this path ~5 ms to import.
    def __init__(self, command: str, options: dict[str, str] | None = None) -> None:
        self.command = command
        self.options: dict[str, str] = {} if options is None else options
        self.arguments: list[str] = []
        self.as_json = False


def answer(argv: Sequence[str]) -> int | None:
    """Answer ``argv`` as the normal path would and return the exit code; None, having
    printed nothing, when that is not certain."""
    connection: sqlite3.Connection | None = None
    try:
        request = _parse(argv)
        home, owner = _settings(request)
        connection = _open(home)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if request.command == "stat":
                _stat(connection, owner, request)
            else:
                _list(connection, owner, request)
        _write(out.getvalue(), err.getvalue())
    except _Fallback:
        return None
    except FiletierError as exc:
        return report(type(exc).__name__, str(exc), exit_code_of(exc), wants_json(argv))
    except KeyboardInterrupt:
        return report("Interrupted", "interrupted", 130, wants_json(argv))
    except Exception:  # noqa: BLE001 - anything unforeseen is the normal path's to answer
        return None
    finally:
        if connection is not None:
            connection.close()
    return 0


# -- the command line ---------------------------------------------------------------------


def _parse(argv: Sequence[str]) -> _Request:
    args = list(argv)
    i, top = 0, _Request("")
    while i < len(args) and args[i].startswith("-"):
        i = _option(args, i, _GLOBAL_OPTIONS, top)
    if i == len(args) or args[i] not in _COMMAND_OPTIONS:
        raise _Fallback
    request = _Request(args[i], options=top.options)
    i += 1
    while i < len(args):
        if args[i] == "--json" and not request.as_json:
            request.as_json, i = True, i + 1
        elif args[i].startswith("-"):
            i = _option(args, i, _COMMAND_OPTIONS[request.command], request)
        else:
            request.arguments.append(args[i])
            i += 1
    if len(request.arguments) != (1 if request.command == "stat" else 0):
        raise _Fallback
    return request


def _option(args: list[str], i: int, known: frozenset[str], request: _Request) -> int:
    """Read the option at ``args[i]`` into ``request``; the index after it."""
    name, equals, value = args[i].partition("=")
    if not equals:
        if i + 1 == len(args) or args[i + 1].startswith("-"):
            raise _Fallback
        value, i = args[i + 1], i + 1
    if name not in known or name in request.options:
        raise _Fallback
    if name in {"--limit", "--offset"}:
        number = int(value) if _DIGITS_RE.fullmatch(value) else -1
        lowest, highest = (1, 1000) if name == "--limit" else (0, _OFFSET_MAX)
        if not lowest <= number <= highest:
            raise _Fallback
    request.options[name] = value
    return i + 1


# -- settings and the store ---------------------------------------------------------------


def _settings(request: _Request) -> tuple[Path, str]:
    """The data dir and the owner, as ``context.build_settings`` makes them."""
    given = request.options.get("--owner")
    if given is not None:
        check_owner_name(given)
    found: dict[str, str] = {}
    for name, value in os.environ.items():
        key = name.lower()
        if not key.startswith("filetier_") and key not in UNPREFIXED_SETTINGS:
            continue
        # Not UTF-8 (undecodable bytes in the environment): pydantic may refuse it.
        value.encode("utf-8")
        if key in INERT_SETTINGS:
            continue
        if key not in HANDLED_SETTINGS or key in found:
            raise _Fallback
        found[key] = value
    if Path(".env").exists() or Path(".env").is_symlink():
        raise _Fallback
    Path.cwd()  # the normal path asks (for the allowed roots); it may fail there
    owner = given if given is not None else found.get("filetier_owner", "default")
    check_owner_name(owner)
    given_home = request.options.get("--home")
    # click refuses an existing --home it cannot read, before any command runs.
    readable = given_home is None or os.access(given_home, os.R_OK)
    if not readable and Path(given_home or "").exists():
        raise _Fallback
    home = given_home if given_home is not None else found.get("filetier_home")
    if home is None:
        import platformdirs

        return platformdirs.user_data_path("filetier").expanduser(), owner
    if not home or "\x00" in home:
        raise _Fallback
    return Path(home).expanduser(), owner


def _open(home: Path) -> sqlite3.Connection:
    """The store's SQLite database, when opening the store would change nothing."""
    database = home / "filetier.db"
    # The normal path puts the path in a SQLAlchemy URL: characters a URL gives meaning
    # to are left to it.
    if any(c in str(database) for c in "?#%") or not database.is_file():
        raise _Fallback
    if not all((home / d).is_dir() for d in STORE_DIRS):
        raise _Fallback
    head = quick_head_revision()
    connection = sqlite3.connect(str(database), timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        revisions = connection.execute(sqlite_reads.STORED_REVISIONS).fetchall()
    except BaseException:
        connection.close()
        raise
    if head is None or mode != "wal" or revisions != [(head,)]:
        connection.close()
        raise _Fallback
    return connection


def _read(connection: sqlite3.Connection, *statements: sqlite_reads.Statement) -> list[Any]:
    """Each statement's rows (as dicts), in one read transaction as the repository's."""
    results = []
    connection.execute("BEGIN")
    try:
        for sql, params in statements:
            cursor = connection.execute(sql, params)
            names = [column[0] for column in cursor.description]
            results.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
    finally:
        connection.execute("ROLLBACK")
    return results


# -- the commands -------------------------------------------------------------------------


def _stat(connection: sqlite3.Connection, owner: str, request: _Request) -> None:
    """``files.stat_file``: the id as ``context.resolve_id`` and ``RecordCache.get`` read it."""
    text = request.arguments[0]
    file_id = _file_id(connection, owner, text)
    (rows,) = _read(connection, sqlite_reads.get_file(owner, file_id))
    if not rows:
        raise no_such_file(file_id)
    record = sqlite_reads.record_json(rows[0])
    (copies,) = _read(connection, sqlite_reads.copies_for_hash(record["sha256"]))
    if copies:
        raise _Fallback  # their life left is the providers module's to tell
    if request.as_json:
        json_out(record | {"provider_copies": []})
    else:
        print_record(record)


def _file_id(connection: sqlite3.Connection, owner: str, text: str) -> UUID:
    try:
        return parse_file_id(text)
    except InvalidFileIdError:
        if not looks_like_prefix(text):
            if PROVIDER_FILE_ID_RE.match(text.strip()):
                raise _Fallback from None  # a provider's file id: its copies decide
            raise
    covered = prefix_range(text)
    if isinstance(covered, UUID):
        return covered
    prefix, low, high = covered
    count, ids = _read(connection, *sqlite_reads.file_ids_between(owner, low, high, limit=2))
    return one_match(prefix, [UUID(row["file_id"]) for row in ids], count[0]["count_1"])


def _list(connection: sqlite3.Connection, owner: str, request: _Request) -> None:
    """``files.list_files`` over ``catalog.list_page`` in its default order."""
    options = request.options
    sha256 = options.get("--sha256")
    limit, offset = int(options.get("--limit", "50")), int(options.get("--offset", "0"))
    count, rows = _read(
        connection,
        *sqlite_reads.list_files(
            owner,
            name_contains=options.get("--name"),
            mime_type=options.get("--type"),
            sha256=sha256.lower() if sha256 else None,
            limit=limit,
            offset=offset,
        ),
    )
    total = count[0]["count_1"]
    items = [sqlite_reads.record_json(row) for row in rows]
    next_offset = offset + len(items) if offset + len(items) < total else None
    if request.as_json:
        page = {"items": items, "total": total, "offset": offset, "limit": limit}
        json_out(page | {"next_offset": next_offset})
        return
    print_file_page(
        [
            (
                r["file_id"],
                datetime.fromisoformat(r["upload_date"]),
                r["size"],
                r["mime_type"],
                r["filename"],
            )
            for r in items
        ],
        total,
        next_offset,
    )


def _write(out: str, err: str) -> None:
    """Print what the command printed, unless a stream cannot encode it: the normal path
    then fails part-way through, and it is its failure to show."""
    for text, stream in ((out, sys.stdout), (err, sys.stderr)):
        text.encode(stream.encoding or "utf-8", stream.errors or "strict")
    sys.stdout.write(out)
    sys.stderr.write(err)
