"""A newcomer's first hour with the `filetier` command: the installed console script in a
real subprocess, a fresh FILETIER_HOME each, real exit codes (issue 16)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import typer.main

from filetier import FileStore, Settings
from filetier.errors import ERROR_TABLE, InvalidInputError, NotFoundError
from filetier.interfaces.cli.app import app
from testbed.services import free_port

FILETIER = str(Path(sys.executable).with_name("filetier"))
README = Path(__file__).resolve().parent.parent / "README.md"
UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    environ.pop("DATABASE_URL", None)
    environ.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"}, **extra)
    return environ


def run(
    home: Path, *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [FILETIER, *args],
        input=stdin,
        capture_output=True,
        env=env_for(home, **env),
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and words in lines[0], proc.stderr


def shared_start(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def upload_ids(home: Path, *paths: Path, owner: str | None = None) -> list[str]:
    args = (["--owner", owner] if owner else []) + ["upload", *map(str, paths), "--json"]
    proc = run(home, *args)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    items = data if isinstance(data, list) else [data]
    return [item["file_id"] for item in items]


def test_ls_and_history_show_whole_ids_at_80_columns(home: Path, tmp_path: Path) -> None:
    src = tmp_path / ("a-rather-long-report-name-that-fills-the-line-" * 2 + ".txt")
    src.write_text("long name\n")
    (file_id,) = upload_ids(home, src)
    out = tmp_path / "out.txt"
    assert run(home, "download", file_id, "--dest", str(out)).returncode == 0
    for command in (["ls"], ["history"], ["history", file_id]):
        proc = run(home, *command, COLUMNS="80")
        assert proc.returncode == 0, proc.stderr
        assert file_id in proc.stdout, proc.stdout
        assert "…" not in proc.stdout
    assert str(out) in run(home, "history", COLUMNS="40").stdout


def test_unique_id_prefix_is_accepted_and_an_ambiguous_one_refused(
    home: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha\n")
    b.write_text("beta\n")
    first, second = upload_ids(home, a, b)
    common = shared_start(first, second)
    assert len(common) >= 8  # time-ordered ids made a moment apart share their start
    unique = second[: len(common) + 1]

    stat = run(home, "stat", unique, "--json")
    assert stat.returncode == 0, stat.stderr
    assert json.loads(stat.stdout)["file_id"] == second
    out = tmp_path / "copy.txt"
    assert run(home, "download", unique, "--dest", str(out)).returncode == 0
    assert out.read_text() == "beta\n"
    assert json.loads(run(home, "history", unique, "--json").stdout)[0]["file_id"] == second

    one_line_error(run(home, "stat", common[:8]), 2, "ambiguous: 2 files match")
    one_line_error(run(home, "stat", first[:3]), 2, "at least 4")
    one_line_error(run(home, "stat", "ffff0000"), 4, "no file whose id starts with ffff0000")

    removed = run(home, "rm", first[: len(common) + 1], "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)[0]["file_id"] == first
    # Now the shared start names one file: a prefix is only as long as it must be.
    assert json.loads(run(home, "stat", common[:8], "--json").stdout)["file_id"] == second


def test_id_prefixes_never_reach_another_owners_files(home: Path, tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine.txt", tmp_path / "theirs.txt"
    mine.write_text("default's file\n")
    theirs.write_text("alice's file\n")
    (alice_id,) = upload_ids(home, theirs, owner="alice")
    (my_id,) = upload_ids(home, mine)
    shared = shared_start(alice_id, my_id)
    assert len(shared) >= 4

    # Alice's file neither matches nor makes a shared prefix ambiguous for `default`.
    proc = run(home, "stat", shared, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["file_id"] == my_id
    alice_unique = alice_id[: len(shared) + 1]
    for command in (["stat", alice_unique], ["rm", alice_unique], ["history", alice_unique]):
        one_line_error(run(home, *command), 4, "no file whose id starts with")
    # The whole id is no better, and alice's file is still there for alice.
    one_line_error(run(home, "stat", alice_id), 4, "no file with id")
    alice = run(home, "--owner", "alice", "stat", alice_unique, "--json")
    assert alice.returncode == 0 and json.loads(alice.stdout)["file_id"] == alice_id


def test_batch_upload_reports_every_item_and_fails_only_at_the_end(
    home: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first\n")
    b.write_text("second\n")
    missing = tmp_path / "missing.txt"
    proc = run(home, "upload", str(a), str(missing), str(b))
    assert proc.returncode == 4, proc.stderr
    assert len(UUID_RE.findall(proc.stdout)) == 2 and "a.txt" in proc.stdout
    assert "b.txt" in proc.stdout
    assert proc.stderr.strip() == f"error: {missing}: no such file: {missing}"
    listing = json.loads(run(home, "ls", "--json").stdout)
    assert sorted(item["filename"] for item in listing["items"]) == ["a.txt", "b.txt"]

    as_json = run(home, "upload", str(a), str(tmp_path), str(b), "--json")
    assert as_json.returncode == 2  # the first failure's code: a directory is bad input
    items = json.loads(as_json.stdout)
    assert [item["source"] for item in items] == [str(a), str(tmp_path), str(b)]
    assert items[0]["deduplicated"] is True and items[2]["deduplicated"] is True
    assert items[1]["error"]["type"] == "SourceNotAFileError"

    rm = run(home, "rm", items[0]["file_id"], "ffff0000", items[2]["file_id"])
    assert rm.returncode == 4
    assert rm.stdout.count("deleted ") == 2 and "ffff0000" in rm.stderr


def test_token_commands_refuse_bad_input_in_one_line(home: Path) -> None:
    one_line_error(run(home, "token", "revoke", "zz"), 2, "at least 8 hex digits")
    one_line_error(run(home, "token", "revoke", "0123456789ab"), 4, "no stored token")
    for bad in ("", " alice", "a:b", "a,b"):
        one_line_error(run(home, "token", "create", bad), 2, "cannot name an owner")
    assert json.loads(run(home, "token", "list", "--json").stdout) == []
    one_line_error(run(home, "--owner", "", "ls"), 2, "cannot name an owner")


def test_token_create_explains_which_owner_sees_the_cli_files(home: Path) -> None:
    proc = run(home, "token", "create", "alice")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("ft_") and len(proc.stdout.strip().splitlines()) == 1
    assert "owner default" in proc.stderr and "--owner alice" in proc.stderr
    same = run(home, "--owner", "alice", "token", "create", "alice", "--json")
    body = json.loads(same.stdout)
    assert body["owner"] == "alice" and body["token"].startswith("ft_")


def test_cli_acts_as_the_owner_it_is_given(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("owned\n")
    upload_ids(home, src, owner="alice")
    assert json.loads(run(home, "ls", "--json").stdout)["total"] == 0
    assert json.loads(run(home, "--owner", "alice", "ls", "--json").stdout)["total"] == 1
    by_env = run(home, "ls", "--json", FILETIER_OWNER="alice")
    assert json.loads(by_env.stdout)["total"] == 1


def test_flags_are_flags_and_version_is_one_string(home: Path) -> None:
    for args in (["--help"], ["ls", "--help"], ["upload", "--help"], ["verify", "--help"]):
        proc = run(home, *args)
        assert proc.returncode == 0, proc.stderr
        assert "<bool>" not in proc.stdout and "--json" in proc.stdout + "--json"
    assert re.search(r"^\s+--json\s+Print", run(home, "ls", "--help").stdout, re.M)
    proc = run(home, "--version")
    assert proc.returncode == 0 and proc.stdout == f"filetier {version('filetier')}\n"
    refused = run(home, "ls", "--json", "true")
    assert refused.returncode == 2
    assert json.loads(refused.stderr)["error"]["message"].startswith("Got unexpected extra")


def test_every_command_takes_json() -> None:
    def leaves(command: object, path: str) -> list[tuple[str, object]]:
        children = getattr(command, "commands", None)
        if not children:
            return [(path, command)]
        return [pair for name, c in children.items() for pair in leaves(c, f"{path} {name}")]

    commands = leaves(typer.main.get_command(app), "filetier")
    assert len(commands) >= 20
    for path, command in commands:
        options = {opt for param in command.params for opt in param.opts}  # type: ignore[attr-defined]
        assert "--json" in options, path


def test_json_output_of_token_create_and_db_upgrade(home: Path) -> None:
    proc = run(home, "db", "upgrade", "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["migrated"] is True and body["revision"] == body["head"]
    assert json.loads(run(home, "db", "upgrade", "--json").stdout)["migrated"] is False


def test_errors_are_json_on_stderr_under_json(home: Path, tmp_path: Path) -> None:
    cases = [
        (["stat", "01a20114-66d5-77e4-9c24-84d38ad1b2e6", "--json"], 4, "NotFoundError"),
        (["upload", str(tmp_path), "--json"], 2, "SourceNotAFileError"),
        (["token", "revoke", "zz", "--json"], 2, "InvalidInputError"),
        (["ls", "--limit", "0", "--json"], 2, "BadParameter"),
        (["serve", "--port", "1", "--json", "--host", "0.0.0.0"], 3, "ConfigError"),  # noqa: S104
    ]
    for args, code, kind in cases:
        proc = run(home, *args)
        assert proc.returncode == code, (args, proc.stderr)
        assert proc.stdout == ""
        error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
        assert error["type"] == kind and error["exit_code"] == code, error
        assert "Traceback" not in proc.stderr


def test_upload_from_stdin(home: Path) -> None:
    data = os.urandom(200_000)
    proc = run(home, "upload", "-", "--name", "piped.bin", "--json", stdin=data)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["filename"] == "piped.bin" and body["size"] == len(data)
    out = home / "downloads" / "piped.bin"
    assert run(home, "download", body["file_id"], "--dest", str(out)).returncode == 0
    assert out.read_bytes() == data
    one_line_error(run(home, "upload", "-", stdin=b"x"), 2, "needs --name")


def test_exit_codes_say_what_went_wrong(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("some text\n")
    (file_id,) = upload_ids(home, src)
    one_line_error(run(home, "provider-id", file_id, "kimmi"), 2, "unknown provider 'kimmi'")
    one_line_error(run(home, "provider-id", file_id, "kimi"), 14, "KIMI_API_KEY")
    one_line_error(run(home, "upload", str(tmp_path)), 2, "is a directory")
    one_line_error(
        run(home, "history", "01a20114-66d5-77e4-9c24-84d38ad1b2e6"), 4, "no file with id"
    )


def test_stat_never_prints_none(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "n.txt"
    src.write_text("n\n")
    (file_id,) = upload_ids(home, src)
    proc = run(home, "stat", file_id)
    assert proc.returncode == 0, proc.stderr
    assert "None" not in proc.stdout
    assert re.search(r"last_accessed: -$", proc.stdout, re.M)
    assert re.search(r"size: 2 bytes \(2 B\)$", proc.stdout, re.M)


def read_pty(fd: int, until: str, timeout: float) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while until.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_progress_and_results_use_binary_units(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [FILETIER, "upload", str(src)],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env_for(home, COLUMNS="120"),
    )
    os.close(slave)
    try:
        stdout, _ = proc.communicate(timeout=60)
        shown = read_pty(master, "\x00", 1)
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert "3.0 MiB" in stdout.decode()
    assert "/ 3.0 MiB" in shown  # the bar was drawn, in the units of the result line
    sizes = re.findall(r"\d+(?:\.\d+)? ?([kKMG]i?B)", shown + stdout.decode())
    assert sizes and all(unit in {"KiB", "MiB", "GiB"} for unit in sizes), sizes


def test_mcp_in_a_terminal_says_it_waits_for_a_client(home: Path) -> None:
    master, slave = pty.openpty()
    with subprocess.Popen(
        [FILETIER, "mcp"],
        stdin=slave,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env_for(home),
    ) as proc:
        os.close(slave)
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline().decode()
            assert "waiting for an MCP client on stdin" in line
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            os.close(master)
    # Launched by a client (stdin a pipe), nothing is said: stderr stays quiet.
    piped = subprocess.run(
        [FILETIER, "mcp"], input=b"", capture_output=True, env=env_for(home), timeout=60
    )
    assert b"waiting" not in piped.stderr


def test_serve_says_where_data_lives_and_what_to_do_without_a_token(home: Path) -> None:
    proc = run(home, "serve", "--port", str(free_port()))
    assert proc.returncode == 3
    assert f"data in {home}" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "--no-auth" in last and "filetier token create NAME" in last

    port = free_port()
    with subprocess.Popen(
        [FILETIER, "serve", "--no-auth", "--port", str(port), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env_for(home),
    ) as server:
        try:
            assert server.stderr is not None
            first = json.loads(server.stderr.readline())
            second = json.loads(server.stderr.readline())
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    assert first["home"] == str(home) and "objects" in first["primary"]
    assert second["owner"] == "default"


def test_readme_documents_every_exit_code() -> None:
    text = README.read_text()
    section = text[text.index("Exit codes") :]
    section = section[: section.index("\n\n", section.index("|"))]
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", section, re.M)}
    used = {mapping.exit_code for _, mapping in ERROR_TABLE} | {0, 1, 2, 3, 12, 13, 130}
    assert used <= documented, used - documented


def test_names_are_printed_as_they_are(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "[bold]x[-].txt"
    src.write_text("markup in a name\n")
    upload_ids(home, src)
    proc = run(home, "ls")
    assert proc.returncode == 0, proc.stderr
    assert "[bold]x[-].txt" in proc.stdout


async def test_prefix_lookup_is_owner_scoped_on_sqlite(home: Path) -> None:
    await check_prefix_lookup(Settings(home=home, fsync=False))


async def test_prefix_lookup_is_owner_scoped_on_postgresql(home: Path, pg_url: str) -> None:
    await check_prefix_lookup(Settings(home=home, fsync=False, database_url=pg_url))


async def check_prefix_lookup(settings: Settings) -> None:
    """The prefix range query behind the CLI, on SQLite's hex text and PostgreSQL's uuid."""
    async with FileStore(settings) as store:
        alice = store.as_owner("alice")
        theirs = await alice.upload_file(b"alice's bytes", filename="a.txt")
        mine = [await store.upload_file(f"{n}".encode(), filename=f"{n}.txt") for n in range(3)]
        ids = sorted(str(r.file_id) for r in mine)
        for file_id in ids:
            # The shortest prefix that tells it from default's other files resolves to it,
            # with or without dashes, in either case.
            n = max(len(shared_start(file_id, other)) for other in ids if other != file_id) + 1
            prefix = file_id[: max(n, 4)]
            assert str(await store.resolve_file_id(prefix.upper())) == file_id
            assert str(await store.resolve_file_id(prefix.replace("-", ""))) == file_id
        common = shared_start(ids[0], ids[-1])
        with pytest.raises(InvalidInputError, match="ambiguous: 3 files match"):
            await store.resolve_file_id(common)
        alice_id = str(theirs.file_id)
        own = shared_start(alice_id, ids[0])
        assert len(own) >= 4  # made moments apart: alice's id starts like default's
        with pytest.raises(NotFoundError):
            await store.resolve_file_id(alice_id[: len(own) + 1])
        with pytest.raises(NotFoundError):
            await store.stat(await store.resolve_file_id(alice_id))
        assert str(await alice.resolve_file_id(alice_id[:13])) == alice_id


def test_ctrl_c_says_interrupted_in_the_asked_format(home: Path) -> None:
    """Ctrl-C during a command (here, an upload still reading its standard input): exit
    130, with the one error line every failure gets, as JSON with --json."""
    for as_json in (True, False):
        with subprocess.Popen(
            [FILETIER, "upload", "-", "--name", "slow.txt", *(["--json"] if as_json else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env_for(home),
        ) as proc:
            assert proc.stdin is not None
            proc.stdin.write(b"the first bytes, and more to come\n")
            proc.stdin.flush()
            time.sleep(1.5)  # started, and reading
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert stdout == b""
        if as_json:
            error = json.loads(stderr.decode().strip().splitlines()[-1])["error"]
            assert (error["type"], error["exit_code"]) == ("Interrupted", 130)
        else:
            assert stderr.decode().strip().splitlines()[-1] == "error: interrupted"
