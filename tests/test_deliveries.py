"""A delivery never replaces a different existing file unless asked.

The same bytes already at the destination are a no-op success; different bytes raise
``DestinationExistsError`` (HTTP 409, CLI exit 18, an MCP tool error) and stay as they
were, unless the caller asks (``overwrite=True``, ``--force``). With no destination, each
owner gets a folder of its own, so owners never collide there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from filetier import DestinationExistsError, FileStore, Settings
from filetier.errors import mapping_for
from filetier.interfaces.mcp import build_server
from filetier.paths import AllowedRoots, owner_folder

FILETIER = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path.resolve()


@pytest.fixture
def settings(home: Path, out: Path) -> Settings:
    roots = os.pathsep.join([str(home / "downloads"), str(out)])
    return Settings(home=home, fsync=False, bookkeeping_flush_seconds=0.05, allowed_roots=roots)


async def test_a_different_file_is_never_replaced_unless_asked(
    settings: Settings, out: Path
) -> None:
    target = out / "notes.txt"
    target.write_bytes(b"the user's own newer edit")
    async with FileStore(settings) as store:
        up = await store.upload_file(b"stored version", filename="notes.txt")

        with pytest.raises(DestinationExistsError, match="already exists with different content"):
            await store.download_file(up.file_id, target)
        assert target.read_bytes() == b"the user's own newer edit"
        # Same size, other bytes: caught by the hash, not just the size.
        target.write_bytes(b"stored versioN")
        with pytest.raises(FileExistsError):
            await store.download_file(up.file_id, target)
        assert target.read_bytes() == b"stored versioN"

        path = await store.download_file(up.file_id, target, overwrite=True)
        assert path == target and target.read_bytes() == b"stored version"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"], "no temp file left"


async def test_identical_content_already_there_is_a_no_op(settings: Settings, out: Path) -> None:
    target = out / "same.bin"
    data = os.urandom(10_000)
    target.write_bytes(data)
    before = target.stat()
    async with FileStore(settings) as store:
        up = await store.upload_file(data, filename="x.bin")
        path = await store.download_file(up.file_id, target)
    after = target.stat()
    assert path == target
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_two_owners_downloading_alike_named_files_get_their_own_bytes(
    settings: Settings,
) -> None:
    async with FileStore(settings) as store:
        alice, bob = store.as_owner("alice"), store.as_owner("bob")
        a = await alice.upload_file(b"alice's report", filename="report.pdf")
        b = await bob.upload_file(b"bob's report", filename="report.pdf")

        a_path = await alice.download_file(a.file_id)
        b_path = await bob.download_file(b.file_id)
        a_again = await alice.download_file(a.file_id)

    assert a_path != b_path
    assert a_path.read_bytes() == b"alice's report"
    assert b_path.read_bytes() == b"bob's report"
    assert a_again == a_path
    assert a_path.parent.name == "alice" and b_path.parent.name == "bob"


async def test_default_destination_never_replaces_a_users_edit(settings: Settings) -> None:
    async with FileStore(settings) as store:
        one = await store.upload_file(b"first notes", filename="notes.txt")
        two = await store.upload_file(b"second, other notes", filename="notes.txt")
        delivered = await store.download_file(one.file_id)
        delivered.write_bytes(b"edited by the user")

        other = await store.download_file(two.file_id)
        again = await store.download_file(two.file_id)

    assert delivered.read_bytes() == b"edited by the user"
    assert other != delivered and other.parent == delivered.parent
    assert other.read_bytes() == b"second, other notes"
    assert again == other, "the same content goes to the same name: a no-op"


def test_owner_folders_never_collide() -> None:
    owners = ["alice", "Alice", "a/b", "a_b", "a:b", ".hidden", "x" * 255, "bob-0123456789abcdef"]
    folders = [owner_folder(o) for o in owners]
    assert len({f.lower() for f in folders}) == len(owners)
    assert owner_folder("alice") == "alice"
    assert all("/" not in f and not f.startswith(".") and len(f.encode()) <= 255 for f in folders)


def test_a_file_planted_after_the_check_is_not_replaced(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    dest = AllowedRoots([root]).resolve_destination("late.txt", default_name="x")
    (root / "late.txt").write_bytes(b"planted after the check")

    with pytest.raises(DestinationExistsError):
        dest.write_bytes(b"ours")

    assert (root / "late.txt").read_bytes() == b"planted after the check"
    assert [p.name for p in root.iterdir()] == ["late.txt"]


def test_the_error_is_mapped_for_every_interface() -> None:
    mapping = mapping_for(DestinationExistsError("x"))
    assert (mapping.http_status, mapping.exit_code) == (409, 18)


# -- MCP -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mcp(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, Any]:
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(block, "text", "") for block in result.content)
    return result.is_error, (text if result.is_error else result.structured_content)


async def test_mcp_download_keeps_an_existing_different_file(settings: Settings, out: Path) -> None:
    async with mcp(settings) as client:
        failed, up = await call(client, "upload_file", text="from the store", filename="a.txt")
        assert not failed
        failed, first = await call(client, "download_file", file_id=up["file_id"])
        assert not failed
        Path(first["path"]).write_text("my newer edit")

        failed, again = await call(client, "download_file", file_id=up["file_id"])
        assert not failed
        assert Path(first["path"]).read_text() == "my newer edit"

        target = out / "mine.txt"
        target.write_text("keep me")
        failed, text = await call(
            client, "download_file", file_id=up["file_id"], destination=str(target)
        )
        assert failed and "already exists with different content" in text
        assert "overwrite" in text
        assert target.read_text() == "keep me"

        failed, _ = await call(
            client, "download_file", file_id=up["file_id"], destination=str(target), overwrite=True
        )
        assert not failed
        assert target.read_text() == "from the store"
    assert Path(again["path"]).read_text() == "from the store"


# -- CLI -------------------------------------------------------------------------------------


def cli(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_")) and k != "DATABASE_URL"
    }
    environ.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"})
    return subprocess.run(
        [*FILETIER, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=60
    )


def test_cli_dest_with_a_trailing_slash_creates_the_directory(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_text("a,b\n1,2\n")
    file_id = cli(home, tmp_path, "upload", str(src), "--json").stdout.split('"file_id": "')[1][:36]

    ran = cli(home, tmp_path, "download", file_id, "--dest", "newdir/")

    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "newdir").is_dir()
    assert (tmp_path / "newdir" / "data.csv").read_text() == "a,b\n1,2\n"


def test_cli_refuses_to_replace_a_different_file_without_force(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_text("stored\n")
    file_id = cli(home, tmp_path, "upload", str(src), "--json").stdout.split('"file_id": "')[1][:36]
    target = tmp_path / "existing.csv"
    target.write_text("precious\n")

    refused = cli(home, tmp_path, "download", file_id, "--dest", "existing.csv")
    assert refused.returncode == 18
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_text() == "precious\n"

    same = cli(home, tmp_path, "download", file_id, "--dest", str(src))
    assert same.returncode == 0, same.stderr

    forced = cli(home, tmp_path, "download", file_id, "--dest", "existing.csv", "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_text() == "stored\n"
