"""The README's examples, run as written: every fenced ``sh`` and ``python`` block runs
against a fresh FILETIER_HOME in a fresh directory, unless the line before its fence is
an HTML comment ``<!-- not-run: reason -->`` (a server that runs until stopped, API keys,
placeholders such as FILE_ID). A block that stops working fails here, in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE_RE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
NOT_RUN_RE = re.compile(r"<!-- not-run: (.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    not_run: str | None


def blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE_RE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN_RE.search(before)
        found.append(
            Block(
                language=match.group(1),
                code=match.group(2),
                line=text.count("\n", 0, match.start()) + 1,
                not_run=reason.group(1) if reason else None,
            )
        )
    return found


ALL = blocks(README.read_text())
RUNNABLE = [b for b in ALL if b.language in ("sh", "python") and b.not_run is None]


def test_every_shell_and_python_block_is_run_or_says_why_not() -> None:
    # Shell and Python go by these two names only, so no example escapes the test.
    aliases = {"bash", "shell", "console", "zsh", "py", "python3", "pycon"}
    assert not aliases & {b.language for b in ALL}, "write ```sh or ```python"
    skipped = [b for b in ALL if b.language in ("sh", "python") and b.not_run]
    assert all(len(b.not_run or "") > 10 for b in skipped)
    assert {b.language for b in RUNNABLE} == {"sh", "python"}


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"{b.language}-line{b.line}" for b in RUNNABLE])
def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    # The README's virtualenv is the one running these tests (`. .venv/bin/activate`).
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "README.md").write_text(README.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    env.pop("DATABASE_URL", None)
    env.pop("VIRTUAL_ENV", None)
    bin_dir = str(Path(sys.prefix) / "bin")
    # filetier is on PATH only through the block's own activation.
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bin_dir)
    env.update(FILETIER_HOME=str(home), FILETIER_FSYNC="0")
    if block.language == "sh":
        argv = ["sh", "-e", "-c", block.code]
    else:
        argv = [sys.executable, "-c", block.code]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"README line {block.line}:\n{proc.stdout}\n{proc.stderr}"
    # Whatever it stored landed where the README says: in FILETIER_HOME, nowhere else.
    assert not (work / "files").exists() and home.exists()
    assert "Traceback" not in proc.stderr
