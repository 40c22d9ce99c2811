"""Over MCP-over-HTTP a caller authenticated by token uses only its own folders.

Tried as bob, a second owner of the same ``filetier serve``: he must not read by path the
file alice just downloaded, replace it, or block her next delivery with a directory, and
his path errors must not tell him where anything lives on the server. Roots that contain
filetier's own files are refused before a server starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from filetier import FileStore, Settings
from filetier.errors import ConfigError
from filetier.interfaces.app import build_app as build_http_api
from filetier.interfaces.mcp import build_server
from tests.support.mcp import ServerThread, call, connect, error_text

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    path = tmp_path / "shared-roots"
    path.mkdir()
    return path


@pytest.fixture
def api(home: Path, roots: Path) -> ServerThread:
    settings = Settings(
        home=home,
        fsync=False,
        bookkeeping_flush_seconds=0.05,
        allowed_roots=str(roots),
        api_tokens=f"alice:{ALICE},bob:{BOB}",
    )
    with ServerThread(build_http_api(settings)) as running:
        yield running


async def test_bob_cannot_read_replace_or_block_alices_delivery(
    api: ServerThread, roots: Path, home: Path
) -> None:
    async with (
        connect(api, None, token=ALICE) as alice,
        connect(api, None, token=BOB) as bob,
    ):
        mine = await call(alice, "upload_file", text="alice's secret plan", filename="plan.txt")
        first = await call(alice, "download_file", file_id=mine["file_id"], destination="plan.txt")
        delivered = Path(first["path"])
        assert delivered == roots.resolve() / "alice" / "plan.txt"

        probes = [
            str(delivered),  # absolute, into alice's folder
            "../alice/plan.txt",  # climbing out of his own
            str(roots / "alice"),
            str(home / "filetier.db"),  # the server's database
            "/etc/passwd",
        ]
        texts = []
        for probe in probes:
            texts.append(await error_text(bob, "upload_file", path=probe))
            bobs = await call(bob, "upload_file", text="bob's bytes", filename="x.txt")
            texts.append(
                await error_text(bob, "download_file", file_id=bobs["file_id"], destination=probe)
            )
            texts.append(
                await error_text(
                    bob,
                    "download_file",
                    file_id=bobs["file_id"],
                    destination=probe,
                    overwrite=True,
                )
            )
        # "plan.txt" for bob is his own folder's: it does not exist there.
        texts.append(await error_text(bob, "upload_file", path="plan.txt"))
        # His own deliveries land in his own folder, even under alice's file name.
        bobs = await call(bob, "upload_file", text="bob's own plan", filename="plan.txt")
        his = await call(bob, "download_file", file_id=bobs["file_id"], destination="plan.txt")
        assert Path(his["path"]) == roots.resolve() / "bob" / "plan.txt"

        again = await call(alice, "download_file", file_id=mine["file_id"], destination="plan.txt")

    assert delivered.read_text() == "alice's secret plan"
    assert again["path"] == first["path"]
    assert sorted(p.name for p in (roots / "alice").iterdir()) == ["plan.txt"]
    for text in texts:
        # Each message may repeat bob's own input, and nothing else of the server's paths.
        for probe in sorted(probes, key=len, reverse=True):
            text = text.replace(repr(probe), "<input>")
        assert str(roots) not in text and str(roots.resolve()) not in text, text
        assert str(home) not in text and "/etc" not in text, text
        assert "Traceback" not in text


async def test_operator_over_stdio_keeps_the_configured_roots(home: Path, roots: Path) -> None:
    """In-process (as over stdio) the caller is the operator: the whole root, as before."""
    from mcp.client import Client

    (roots / "shared.txt").write_text("operator's file")
    settings = Settings(home=home, fsync=False, allowed_roots=str(roots))
    async with Client(build_server(settings)) as client:
        up = await call(client, "upload_file", path="shared.txt")
        out = await call(client, "download_file", file_id=up["file_id"], destination="copy.txt")
    assert Path(out["path"]) == roots.resolve() / "copy.txt"


async def test_download_history_of_one_owner_is_not_changed_by_another(
    home: Path, roots: Path
) -> None:
    settings = Settings(
        home=home, fsync=False, bookkeeping_flush_seconds=0.05, allowed_roots=str(roots)
    )
    async with FileStore(settings) as store:
        alice, bob = store.as_owner("alice"), store.as_owner("bob")
        a = await alice.upload_file(b"same bytes", filename="same.txt")
        b = await bob.upload_file(b"same bytes", filename="same.txt")
        await alice.download_file(a.file_id, roots / "same.txt")
        await alice.flush()
        await bob.download_file(b.file_id, roots / "same.txt")  # identical: a no-op
        await bob.flush()
        history = await alice.history(a.file_id)
    assert [event.removed_at for event in history] == [None]


@pytest.mark.parametrize("inside", ["", "home", "objects", "in-objects", "in-cache"])
def test_roots_over_filetiers_own_files_are_refused_at_start(
    home: Path, tmp_path: Path, inside: str
) -> None:
    root = {
        "": tmp_path,
        "home": home,
        "objects": home / "objects",
        "in-objects": home / "objects" / "ab",
        "in-cache": home / "cache" / "sha256",
    }[inside]
    settings = Settings(home=home, allowed_roots=str(root))

    with pytest.raises(ConfigError, match=r"(contains|lies inside) filetier's"):
        build_server(settings)
    # The downloads folder inside the data dir is what roots are for.
    build_server(Settings(home=home, allowed_roots=str(home / "downloads")))

    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_")) and k != "DATABASE_URL"
    }
    environ.update(
        FILETIER_HOME=str(home),
        FILETIER_ALLOWED_ROOTS=str(root),
        FILETIER_API_TOKENS=f"alice:{ALICE}",
    )
    for command in (["serve", "--port", "1"], ["mcp"]):
        ran = subprocess.run(
            [
                sys.executable,
                "-c",
                "from filetier.interfaces.cli.app import main; main()",
                *command,
            ],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert ran.returncode == 3, ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
        assert "FILETIER_ALLOWED_ROOTS" in ran.stderr and "Traceback" not in ran.stderr
