"""Provider SDKs are optional extras: without one, filetier still works, and asking for
that provider is one ``error:`` line naming the extra to install.

The SDK is made missing the way an install without the extra is: a subprocess whose
import system cannot find the package (a meta path finder that refuses it), running
the real CLI. Nothing of filetier's is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filetier import FileStore, Settings

# Before filetier is imported, make the named top-level packages unimportable.
BLOCK = """
import sys
BLOCKED = set(sys.argv.pop(1).split(","))

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from filetier.interfaces.cli.app import main
main()
"""


def run_cli(home: Path, blocked: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_", "ANTHROPIC_", "MISTRAL_"))
    }
    environ.pop("DATABASE_URL", None)
    environ.update(FILETIER_HOME=str(home), FILETIER_FSYNC="0", **env)
    return subprocess.run(
        [sys.executable, "-c", BLOCK, blocked, *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=home,
        timeout=120,
    )


async def stored_file(home: Path) -> str:
    async with FileStore(Settings(home=home, fsync=False)) as store:
        return str((await store.upload_file(b"needs a provider\n", filename="a.txt")).file_id)


@pytest.mark.parametrize(
    ("provider", "blocked", "key_var"),
    [("anthropic", "anthropic", "ANTHROPIC_API_KEY"), ("mistral", "mistralai", "MISTRAL_API_KEY")],
)
async def test_a_missing_sdk_is_one_line_naming_the_extra(
    home: Path, provider: str, blocked: str, key_var: str
) -> None:
    fid = await stored_file(home)
    proc = run_cli(home, blocked, "provider-id", fid, provider, **{key_var: "sk-unused-9f8e"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"pip install 'filetier[{provider}]'" in lines[0]
    assert blocked in lines[0]
    assert "sk-unused-9f8e" not in proc.stderr + proc.stdout


async def test_without_any_provider_sdk_the_store_still_works(home: Path) -> None:
    fid = await stored_file(home)
    proc = run_cli(home, "anthropic,mistralai", "stat", fid)
    assert proc.returncode == 0, proc.stderr
    assert "a.txt" in proc.stdout


def test_doctor_names_the_missing_extra_and_checks_the_rest(home: Path) -> None:
    proc = run_cli(home, "anthropic", "doctor", "--json", ANTHROPIC_API_KEY="sk-unused-9f8e")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["provider anthropic"]["ok"] is False
    assert "pip install 'filetier[anthropic]'" in checks["provider anthropic"]["detail"]
    assert checks["provider mistral"]["ok"] is True  # not configured is fine
    assert "sk-unused-9f8e" not in proc.stdout + proc.stderr
