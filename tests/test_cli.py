"""The `filetier` command as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FILETIER = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


def run(
    home: Path, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    environ.pop("DATABASE_URL", None)
    environ.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"}, **env)
    return subprocess.run(
        [*FILETIER, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=60
    )


def test_upload_download_round_trip_exits_zero(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "notes.md"
    src.write_text("# notes\nhello\n")
    up = run(home, "upload", str(src), "--json")
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert result["size"] == src.stat().st_size
    assert result["mime_type"] == "text/markdown"
    assert result["deduplicated"] is False

    again = json.loads(run(home, "upload", str(src), "--json").stdout)
    assert again["deduplicated"] is True
    assert again["file_id"] != result["file_id"]

    out = tmp_path / "copy.md"
    down = run(home, "download", result["file_id"], "--dest", str(out), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert out.read_bytes() == src.read_bytes()

    listing = json.loads(run(home, "ls", "--json").stdout)
    assert listing["total"] == 2
    history = json.loads(run(home, "history", result["file_id"], "--json").stdout)
    assert [h["destination_path"] for h in history] == [str(out)]


@pytest.mark.parametrize("primary", ["memory://", "file://{tmp}/remote"])
def test_exit_code_is_zero_with_obstore_loaded(home: Path, tmp_path: Path, primary: str) -> None:
    """obstore's Rust runtime can abort the interpreter at exit (134); the CLI must not."""
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(100_000))
    url = primary.format(tmp=tmp_path)
    # A memory:// primary lives only as long as its process, so verify is not asked there.
    commands = [["upload", str(src)], ["stats"], ["doctor"], ["ls"]]
    if url.startswith("file://"):
        commands.append(["verify"])
    for args in commands:
        proc = run(home, *args, FILETIER_PRIMARY_URL=url)
        assert proc.returncode == 0, (args, proc.returncode, proc.stderr)


def test_errors_are_one_line_with_documented_exit_codes(home: Path, tmp_path: Path) -> None:
    cases = [
        (["download", "not-a-uuid"], 2, "is not a file id"),
        (["stat", "01a20114-66d5-77e4-9c24-84d38ad1b2e6"], 4, "no file with id"),
        (["upload", str(tmp_path / "missing.txt")], 4, "no such file"),
    ]
    for args, code, words in cases:
        proc = run(home, *args)
        assert proc.returncode == code, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_download_outside_allowed_roots_refused_and_nothing_written(
    home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("secret-free content")
    file_id = json.loads(run(home, "upload", str(src), "--json").stdout)["file_id"]
    inside = tmp_path / "work"
    inside.mkdir()
    outside = tmp_path / "work-evil"
    outside.mkdir()
    proc = run(home, "download", file_id, "--dest", str(outside / "x.txt"), cwd=inside)
    assert proc.returncode == 5
    assert "allowed roots" in proc.stderr
    assert not (outside / "x.txt").exists()


def test_verify_reports_corruption_with_exit_12_and_fix_repairs_cache(
    home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "b.bin"
    src.write_bytes(os.urandom(50_000))
    remote = f"file://{tmp_path / 'remote'}"
    up = json.loads(run(home, "upload", str(src), "--json", FILETIER_PRIMARY_URL=remote).stdout)
    sha = up["sha256"]
    cached = home / "cache" / "sha256" / sha[:2] / sha[2:4] / sha
    assert cached.exists()
    data = bytearray(cached.read_bytes())
    data[100] ^= 0xFF
    cached.write_bytes(bytes(data))
    found = run(home, "verify", FILETIER_PRIMARY_URL=remote)
    assert found.returncode == 12
    assert "corrupt_cache" in found.stdout
    fixed = run(home, "verify", "--fix", FILETIER_PRIMARY_URL=remote)
    assert fixed.returncode == 0, fixed.stdout
    clean = run(home, "verify", "--json", FILETIER_PRIMARY_URL=remote)
    assert clean.returncode == 0 and json.loads(clean.stdout)["findings"] == []


def test_dry_run_cleanup_and_gc_print_plans_and_change_nothing(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "c.bin"
    src.write_bytes(b"x" * 10_000)
    run(home, "upload", str(src))
    objects_before = sorted(p.name for p in (home / "objects").rglob("*") if p.is_file())
    for command in ("cleanup", "gc"):
        proc = run(home, command, "--dry-run", "--json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["dry_run"] is True and report["operation"] == command
    assert sorted(p.name for p in (home / "objects").rglob("*") if p.is_file()) == objects_before


def test_doctor_masks_secrets(home: Path) -> None:
    secret = "sk-supersecret-value-123"  # noqa: S105 - a value the test hides
    proc = run(
        home,
        "doctor",
        "--json",
        SUPABASE_KEY=secret,
        SUPABASE_SERVICE_KEY=secret + "2",
        FILETIER_DATABASE_URL=f"sqlite:///{home}/filetier.db",
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["settings"]["supabase_key"] == "****"
    assert all(check["ok"] for check in report["checks"])


def test_db_upgrade_is_idempotent(home: Path) -> None:
    first = run(home, "db", "upgrade")
    second = run(home, "db", "upgrade")
    assert first.returncode == 0 and "migrated at revision 0008" in first.stdout
    assert second.returncode == 0 and "already at revision 0008" in second.stdout
