"""What a short `filetier` command loads: an agent pays every import on every call.

Timings are not asserted (a shared CI machine makes them noise; ``bench/bench_cli.py``
measures them); what is asserted is the work each command leaves undone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs the real entry point and reports, as it leaves, which of these modules it loaded.
PROBE = """
import json, os, sys
HEAVY = {heavy!r}
leave = os._exit
def report(code):
    sys.stdout.flush()
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    sys.stderr.write("LOADED " + json.dumps(loaded) + "\\n")
    sys.stderr.flush()
    leave(code)
os._exit = report
from filetier.interfaces.cli.{entry} import main
main()
"""

# Servers, migrations and clients a store that reads metadata never needs.
NEVER_FOR_A_READ = [
    "alembic",
    "httpx",
    "mcp",
    "obstore",
    "openai",
    "rich",
    "sqlalchemy.dialects.postgresql",
    "starlette",
    "uvicorn",
]


def env_for(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    environ.pop("DATABASE_URL", None)
    environ.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"})
    return environ


def loaded_by(
    home: Path, *args: str, heavy: list[str], entry: str = "app"
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy, entry=entry), *args],
        capture_output=True,
        text=True,
        env=env_for(home),
        timeout=60,
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED "))
    return proc, json.loads(line.removeprefix("LOADED "))


def test_help_and_version_load_no_store(home: Path) -> None:
    heavy = ["sqlalchemy", "pydantic", "pydantic_settings", "rich", "asyncio", "filetier.store"]
    for args in (["--help"], ["--version"]):
        proc, loaded = loaded_by(home, *args, heavy=heavy)
        assert proc.returncode == 0, proc.stderr
        assert loaded == [], (args, loaded)
    proc, _ = loaded_by(home, "--version", heavy=heavy)
    assert proc.stdout.startswith("filetier ")
    proc, _ = loaded_by(home, "--help", heavy=heavy)
    assert "upload" in proc.stdout and "download" in proc.stdout


def test_the_installed_script_answers_version_without_typer(home: Path) -> None:
    """``filetier`` (pyproject's script) enters through ``front``: ``--version`` alone
    loads neither typer nor the store; any other argument list reaches the full CLI."""
    proc, loaded = loaded_by(home, "--version", heavy=["typer", "pydantic"], entry="front")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("filetier ")
    assert loaded == []
    proc, loaded = loaded_by(home, "--help", heavy=["typer"], entry="front")
    assert proc.returncode == 0, proc.stderr
    assert "upload" in proc.stdout
    assert loaded == ["typer"]
    proc, _ = loaded_by(home, "stat", "nope", heavy=[], entry="front")
    assert proc.returncode != 0
    assert "error:" in proc.stderr


def test_ls_and_stat_on_a_store_at_head_load_no_migration_or_server_code(
    home: Path, tmp_path: Path
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello\n")
    up = subprocess.run(
        [
            sys.executable,
            "-c",
            "from filetier.interfaces.cli.app import main; main()",
            "upload",
            str(src),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env_for(home),
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    file_id = json.loads(up.stdout)["file_id"]

    proc, loaded = loaded_by(home, "ls", heavy=NEVER_FOR_A_READ)
    assert proc.returncode == 0, proc.stderr
    assert file_id in proc.stdout
    assert loaded == []
    proc, loaded = loaded_by(home, "stat", file_id[:8], heavy=NEVER_FOR_A_READ)
    assert proc.returncode == 0, proc.stderr
    assert file_id in proc.stdout
    assert loaded == []


def test_a_new_home_is_still_migrated_on_first_use(home: Path) -> None:
    proc, loaded = loaded_by(home / "fresh", "ls", heavy=["alembic"])
    assert proc.returncode == 0, proc.stderr
    assert loaded == ["alembic"]
    assert (home / "fresh" / "filetier.db").exists() or any((home / "fresh").rglob("*.db"))


def test_import_filetier_is_light_and_the_public_api_is_whole() -> None:
    code = (
        "import sys, filetier\n"
        "assert 'sqlalchemy' not in sys.modules and 'pydantic' not in sys.modules\n"
        "from filetier import FileStore, Settings, UploadResult\n"
        "assert 'sqlalchemy' in sys.modules\n"
        "assert filetier.FileStore is FileStore and 'FileStore' in dir(filetier)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_bench_cli_quick_runs_and_prints_every_row() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_cli.py"), "--quick", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    for row in (
        "python3 -c pass",
        "filetier --help",
        "filetier --version",
        "filetier stat ID",
        "filetier ls",
    ):
        assert f"| {row} |" in proc.stdout, proc.stdout
