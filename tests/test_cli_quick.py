"""The quick path of ``filetier stat`` and ``ls`` answers exactly as the normal path does.

Each case runs the installed ``filetier`` script (which tries the quick path first) and
the normal path (``cli.app.main``, which never does) on the same store, and compares
stdout, stderr and the exit code byte for byte. ``-X importtime`` on the script's run
shows which path answered: the quick path loads neither typer nor SQLAlchemy; the cases
it must leave to the normal path show typer loaded (and the same answer).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from filetier.interfaces.cli.quick import UNPREFIXED_SETTINGS

SCRIPT = Path(sys.executable).parent / "filetier"
# The normal path under the script's name (click names the program in usage errors).
NORMAL = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'filetier'; from filetier.interfaces.cli.app import main; main()",
]

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="the filetier script is not installed")


def clean_environ(home: Path) -> dict[str, str]:
    """The environment without any setting, but the data dir."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.lower().startswith("filetier_") and name.lower() not in UNPREFIXED_SETTINGS
    }
    return environ | {"FILETIER_HOME": str(home)}


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        lines = proc.stderr.splitlines(keepends=True)
        self.modules = {
            line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")
        }
        self.stderr = "".join(line for line in lines if not line.startswith("import time:"))
        self.stdout = proc.stdout
        self.code = proc.returncode

    @property
    def quick(self) -> bool:
        return "typer" not in self.modules and "sqlalchemy" not in self.modules


def both(args: list[str], env: dict[str, str], cwd: Path) -> tuple[Run, Run]:
    """The script's answer (importtime lines set apart) and the normal path's."""

    def run(argv: list[str]) -> Run:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False
        )
        return Run(proc)

    return run([sys.executable, "-X", "importtime", str(SCRIPT), *args]), run([*NORMAL, *args])


def assert_same(script: Run, normal: Run) -> None:
    assert (script.stdout, script.stderr, script.code) == (
        normal.stdout,
        normal.stderr,
        normal.code,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with files of two owners; the values the cases name."""
    root = tmp_path_factory.mktemp("quick")
    home, sources = root / "home", root / "sources"
    sources.mkdir()
    env = clean_environ(home) | {"FILETIER_FSYNC": "0"}
    names = ["report 50%.txt", "under_score.md", "Été.txt", "plain.txt", "copy of plain.txt"]
    for i, name in enumerate(names):
        (sources / name).write_text(f"file {i % 4}\n")
    (sources / "pixel.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (sources / "data.json").write_text('{"a": 1}\n')
    (sources / "bob.txt").write_text("bob's own\n")

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [*NORMAL, *args], capture_output=True, text=True, env=env, cwd=root, check=False
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("upload", *(str(sources / n) for n in [*names, "pixel.png"]))
    meta = '{"tags": ["a", "é"], "n": 1.5, "nested": {"x": null}, "big": 12345678901234567890}'
    meta_id = cli("upload", str(sources / "data.json"), "--meta", meta).split()[0]
    bob_id = cli("--owner", "bob", "upload", str(sources / "bob.txt")).split()[0]
    plain_id = cli("ls", "--name", "plain.txt", "--limit", "1").split("\n")[1].split()[0]
    sha = cli("stat", plain_id).split("sha256: ")[1].split()[0]
    cli("download", plain_id, "--dest", str(root / "out") + "/")  # last_accessed, access_count
    ids = [line.split()[0] for line in cli("ls").splitlines()[1:]]
    # uuid7 ids made in the same second share their first digits: a prefix of two files.
    first, second = ids[0], ids[1]
    shared = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)]
    return {
        "root": str(root),
        "home": str(home),
        "id": plain_id,
        "meta_id": meta_id,
        "bob_id": bob_id,
        "prefix": plain_id[:-3],
        "ambiguous": shared,
        "missing": str(uuid.uuid4()),
        "sha_upper": sha.upper(),
    }


def fill(args: list[str], values: dict[str, str]) -> list[str]:
    return [arg.format(**values) for arg in args]


QUICK_CASES = [
    ["ls"],
    ["ls", "--json"],
    ["ls", "--limit", "2"],
    ["ls", "--limit=2", "--offset=2", "--json"],
    ["ls", "--offset", "4"],
    ["ls", "--offset", "100", "--json"],
    ["ls", "--name", "50%"],
    ["ls", "--name", "_"],
    ["ls", "--name", "été"],
    ["ls", "--name", "PLAIN", "--json"],
    ["ls", "--name", ""],
    ["ls", "--type", "text/*"],
    ["ls", "--type", "text/plain", "--json"],
    ["ls", "--type", "image/png"],
    ["ls", "--type", "text_*"],
    ["ls", "--sha256", "{sha_upper}"],
    ["ls", "--json", "--limit", "1000"],
    ["--owner", "bob", "ls"],
    ["--owner=nobody", "ls", "--json"],
    ["--home", "{home}", "ls"],
    ["stat", "{id}"],
    ["stat", "{id}", "--json"],
    ["stat", "{meta_id}"],
    ["stat", "--json", "{meta_id}"],
    ["stat", "{prefix}"],
    ["stat", " {id} "],
    ["stat", "{ambiguous}"],
    ["stat", "{ambiguous}", "--json"],
    ["stat", "abc"],
    ["stat", "{missing}"],
    ["stat", "{missing}", "--json"],
    ["stat", "{bob_id}"],  # another owner's file: the same answer as a missing one
    ["--owner", "bob", "stat", "{bob_id}"],
    ["stat", "not an id!"],
    ["stat", ""],
    ["stat", "  "],
    ["stat", "g/" * 40],  # past 64 characters: the message shows the start
    ["--owner", "a:b", "ls"],
    ["--owner", "", "stat", "{id}"],
]


@pytest.mark.parametrize("args", QUICK_CASES, ids=" ".join)
def test_the_quick_path_answers_as_the_normal_path(args: list[str], store: dict[str, str]) -> None:
    env = clean_environ(Path(store["home"]))
    script, normal = both(fill(args, store), env, Path(store["root"]))
    assert script.quick, "the quick path declined"
    assert_same(script, normal)


ENV_CASES = [
    ({"FILETIER_OWNER": "bob"}, ["ls"]),
    ({"FILETIER_OWNER": "bob"}, ["stat", "{bob_id}", "--json"]),
    ({"FILETIER_OWNER": "bad:owner"}, ["ls"]),
    ({"filetier_owner": "bob"}, ["ls"]),  # settings are read ignoring case
    ({"OPENAI_API_KEY": "sk-test", "FILETIER_ANTHROPIC_MODEL": "m", "GLM_BASE_URL": "x"}, ["ls"]),
    ({"FILETIER_OWNER": "bob"}, ["--owner", "default", "stat", "{id}"]),
]


@pytest.mark.parametrize(("extra", "args"), ENV_CASES, ids=str)
def test_the_owner_from_the_environment(
    extra: dict[str, str], args: list[str], store: dict[str, str]
) -> None:
    env = clean_environ(Path(store["home"])) | extra
    script, normal = both(fill(args, store), env, Path(store["root"]))
    assert script.quick
    assert_same(script, normal)


FALLBACK_CASES = [
    ({}, ["stat", "file-abc123"]),  # a provider's file id
    ({}, ["stat", "zzzz"]),
    ({}, ["stat", "g" * 40]),
    ({}, ["-v", "ls"]),
    ({}, ["ls", "--help"]),
    ({}, ["ls", "--limit", "0"]),
    ({}, ["ls", "--limit", "x"]),
    ({}, ["ls", "--offset", "-1"]),
    ({}, ["ls", "--sort", "name"]),
    ({}, ["ls", "extra"]),
    ({}, ["ls", "--json", "--json"]),
    ({}, ["ls", "--name", "a", "--name", "b"]),
    ({}, ["stat"]),
    ({}, ["stat", "{id}", "{id}"]),
    ({}, ["stat", "--", "{id}"]),
    ({}, ["--json", "ls"]),
    ({"FILETIER_MAX_FILE_SIZE": "lots"}, ["ls"]),  # an invalid setting: the normal path's error
    ({"FILETIER_FSYNC": "0"}, ["ls"]),
    ({"FILETIER_OPENAI_UPLOAD_PARALLEL": "99"}, ["ls"]),  # a provider setting that can be refused
    ({"FILETIER_OWNER": "bob", "filetier_owner": "eve"}, ["ls"]),  # which one wins is not ours
]


@pytest.mark.parametrize(("extra", "args"), FALLBACK_CASES, ids=str)
def test_what_the_quick_path_leaves_to_the_normal_path(
    extra: dict[str, str], args: list[str], store: dict[str, str]
) -> None:
    env = clean_environ(Path(store["home"])) | extra
    script, normal = both(fill(args, store), env, Path(store["root"]))
    assert not script.quick, "the quick path answered"
    assert "typer" in script.modules
    assert_same(script, normal)


def test_a_dotenv_file_is_left_to_the_normal_path(store: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FILETIER_OWNER=bob\n")
    script, normal = both(["ls"], clean_environ(Path(store["home"])), tmp_path)
    assert not script.quick
    assert_same(script, normal)
    assert "bob.txt" in script.stdout


def test_a_new_data_dir_is_made_by_the_normal_path(tmp_path: Path) -> None:
    """No database yet: the normal path creates and migrates it (the quick one never writes)."""
    first, second = tmp_path / "a", tmp_path / "b"
    script = Run(
        subprocess.run(
            [sys.executable, "-X", "importtime", str(SCRIPT), "ls"],
            capture_output=True,
            text=True,
            env=clean_environ(first),
            cwd=tmp_path,
            check=False,
        )
    )
    normal = Run(
        subprocess.run(
            [*NORMAL, "ls"],
            capture_output=True,
            text=True,
            env=clean_environ(second),
            cwd=tmp_path,
            check=False,
        )
    )
    assert not script.quick
    assert_same(script, normal)
    assert (first / "filetier.db").is_file()


def test_the_quick_path_needs_every_directory_the_store_makes(tmp_path: Path) -> None:
    """What opening a store makes, beside the database, is what the quick path checks."""
    from filetier.interfaces.cli.quick import STORE_DIRS

    home = tmp_path / "home"
    proc = subprocess.run(
        [*NORMAL, "ls"], capture_output=True, text=True, env=clean_environ(home), check=False
    )
    assert proc.returncode == 0, proc.stderr
    made = {p for p in home.rglob("*") if p.is_dir()}
    leaves = {p.relative_to(home).as_posix() for p in made if not any(q.parent == p for q in made)}
    assert leaves == set(STORE_DIRS)
    shutil.rmtree(home / "cache" / "tmp")
    script, normal = both(["ls"], clean_environ(home), tmp_path)
    assert not script.quick
    assert_same(script, normal)


def test_a_schema_it_does_not_know_is_left_to_the_normal_path(
    store: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(store["home"], home)
    with sqlite3.connect(home / "filetier.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'feedface0000'")
    db.close()
    script, normal = both(["ls"], clean_environ(home), tmp_path)
    assert not script.quick
    assert normal.code != 0
    assert_same(script, normal)


def test_a_file_with_provider_copies_is_left_to_the_normal_path(
    store: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(store["home"], home)
    with sqlite3.connect(home / "filetier.db") as db:
        (sha,) = db.execute(
            "SELECT file_hash FROM file_metadata WHERE file_id = ?",
            (uuid.UUID(store["meta_id"]).hex,),
        ).fetchone()
        db.execute(
            "INSERT INTO provider_file_uploads (id, owner, file_hash, provider, "
            "provider_account, purpose, provider_file_id, status, uploaded_at, download_count, "
            "bytes) VALUES (?, 'default', ?, 'openai', 'acct', 'user_data', 'file-quick1', "
            "'active', '2026-01-02 03:04:05.000000', 0, 9)",
            (uuid.uuid4().hex, sha),
        )
    db.close()
    for args in (["stat", store["meta_id"]], ["stat", store["meta_id"], "--json"]):
        script, normal = both(args, clean_environ(home), tmp_path)
        assert not script.quick
        assert_same(script, normal)
        assert "file-quick1" in script.stdout
    script, normal = both(["ls"], clean_environ(home), tmp_path)
    assert script.quick
    assert_same(script, normal)


def test_the_default_data_dir(tmp_path: Path) -> None:
    """Without FILETIER_HOME or --home the data dir is platformdirs' (XDG_DATA_HOME here)."""
    env = clean_environ(tmp_path) | {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    del env["FILETIER_HOME"]
    source = tmp_path / "a.txt"
    source.write_text("in the default home\n")
    up = subprocess.run(
        [*NORMAL, "upload", str(source)], capture_output=True, text=True, env=env, check=False
    )
    assert up.returncode == 0, up.stderr
    assert (tmp_path / "xdg" / "filetier" / "filetier.db").is_file()
    for args in (["ls"], ["stat", up.stdout.split()[0], "--json"]):
        script, normal = both(args, env, tmp_path)
        assert script.quick
        assert_same(script, normal)


def test_the_normal_stat_and_ls_change_nothing_the_quick_path_would_skip(
    store: dict[str, str], tmp_path: Path
) -> None:
    """The quick path only reads: so must the normal path's ``stat`` and ``ls`` on a store
    that is ready (no file, directory or row made, moved or changed), or the two differ."""
    home = tmp_path / "home"
    shutil.copytree(store["home"], home)

    def state() -> tuple[dict[str, tuple[int, int]], list[str]]:
        files = {
            p.relative_to(home).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in home.rglob("*")
            if not p.name.startswith("filetier.db")
        }
        with sqlite3.connect(home / "filetier.db") as db:
            rows = list(db.iterdump())
        db.close()
        return files, rows

    before = state()
    for args in (["ls"], ["stat", store["id"]], ["stat", store["meta_id"], "--json"]):
        proc = subprocess.run(
            [*NORMAL, *args], capture_output=True, text=True, env=clean_environ(home), check=False
        )
        assert proc.returncode == 0, proc.stderr
    assert state() == before
