"""``filetier provider-id | text | ask | providers sync | doctor`` as a user runs them.

Each command is a real subprocess configured only by the environment (``KIMI_API_KEY``,
``KIMI_BASE_URL``, ``FILETIER_PROVIDER_*``) and talks to the loopback provider over HTTP.
Successes exit 0 with the documented output; failures are one ``error:`` line on stderr
with the exit code of ``filetier.errors.ERROR_TABLE``; the API key never appears.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from filetier import FileStore, Settings
from testbed.provider_server import ProviderServer

FILETIER = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]
KEY = "sk-kimi-cli-secret-51b7e0c2a9"
_PROVIDER_VARS = tuple(
    f"{p}_{s}" for p in ("KIMI", "GLM", "OPENAI") for s in ("API_KEY", "BASE_URL")
)


@pytest.fixture(scope="module")
def running() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as provider:
        yield provider


@pytest.fixture
def server(running: ProviderServer) -> Iterator[ProviderServer]:
    running.reset()
    yield running
    running.reset()


def filetier(
    home: Path, server: ProviderServer | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``filetier ARGS`` with kimi pointed at ``server`` (unless None or overridden)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILETIER_", "SUPABASE_")) and k not in _PROVIDER_VARS
    }
    environ.pop("DATABASE_URL", None)
    environ.update(
        FILETIER_HOME=str(home),
        FILETIER_FSYNC="0",
        FILETIER_PROVIDER_RETRY_ATTEMPTS="2",
        FILETIER_PROVIDER_MAX_RETRY_WAIT_SECONDS="1",
        FILETIER_PROVIDER_TIMEOUT_SECONDS="2",
    )
    if server is not None:
        environ.update(KIMI_API_KEY=server.api_key, KIMI_BASE_URL=server.base_url)
    environ.update(env)
    return subprocess.run(
        [*FILETIER, *args], capture_output=True, text=True, env=environ, cwd=home, timeout=60
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


async def store_files(home: Path, *contents: tuple[str, bytes]) -> list[str]:
    async with FileStore(Settings(home=home, fsync=False)) as store:
        return [
            str((await store.upload_file(data, filename=name)).file_id) for name, data in contents
        ]


def provider_rows(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "filetier.db") as conn:
        return conn.execute(
            "SELECT provider_file_id, status FROM provider_file_uploads ORDER BY provider_file_id"
        ).fetchall()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_provider_id_text_and_ask(home: Path, server: ProviderServer) -> None:
    alpha, beta = await store_files(
        home, ("alpha.txt", b"alpha: the launch is on Tuesday\n"), ("beta.txt", b"beta: no\n")
    )

    first = filetier(home, server, "provider-id", alpha, "kimi", "--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["file_id"] == alpha
    assert (result["provider"], result["purpose"], result["uploaded"]) == (
        "kimi",
        "file-extract",
        True,
    )
    pid = result["provider_file_id"]
    assert set(server.files) == {pid} and server.upload_count == 1

    # Another process finds the recorded copy: nothing is sent.
    seen = server.requests
    again = filetier(home, server, "provider-id", alpha, "kimi")
    assert again.returncode == 0, again.stderr
    assert pid in again.stdout and "nothing sent" in again.stdout
    assert server.requests == seen

    text = filetier(home, server, "text", alpha, "kimi")
    assert text.returncode == 0, text.stderr
    assert text.stdout == "alpha: the launch is on Tuesday\n"
    assert server.upload_count == 1

    ask = filetier(home, server, "ask", alpha, beta, "-p", "kimi", "When is the launch?")
    assert ask.returncode == 0, ask.stderr
    assert ask.stdout.strip() == "answer to When is the launch? using 2 system messages"
    (chat,) = server.chat_requests
    assert [m["role"] for m in chat["messages"]] == ["system", "system", "user"]
    assert [json.loads(m["content"])["filename"] for m in chat["messages"][:2]] == [
        "alpha.txt",
        "beta.txt",
    ]
    assert server.upload_count == 2  # beta once; alpha's copy and text were reused
    for proc in (first, again, text, ask):
        assert KEY not in proc.stdout + proc.stderr


async def test_providers_sync_is_a_dry_run_until_apply(home: Path, server: ProviderServer) -> None:
    await store_files(home, ("kept.txt", b"kept\n"))
    foreign = server.seed_file("console.pdf", b"%PDF-1.4 uploaded elsewhere")["id"]

    plan = filetier(home, server, "providers", "sync")
    assert plan.returncode == 0, plan.stderr
    assert "would record_foreign" in plan.stdout and foreign in plan.stdout
    assert "1 actions for kimi; run with --apply" in plan.stdout
    assert provider_rows(home) == []

    applied = filetier(home, server, "providers", "sync", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "did record_foreign" in applied.stdout and foreign in applied.stdout
    assert provider_rows(home) == [(foreign, "foreign")]
    assert set(server.files) == {foreign}

    settled = filetier(home, server, "providers", "sync", "--json")
    assert settled.returncode == 0, settled.stderr
    report = json.loads(settled.stdout)
    assert (report["dry_run"], report["providers"], report["actions"]) == (True, ["kimi"], [])


async def test_errors_are_one_line_with_their_exit_codes(
    home: Path, server: ProviderServer
) -> None:
    (fid,) = await store_files(home, ("a.txt", b"a\n"))

    unset = filetier(home, None, "provider-id", fid, "kimi")
    assert unset.returncode == 14, unset.stderr
    assert "KIMI_API_KEY" in one_error_line(unset)

    down_url = f"http://127.0.0.1:{closed_port()}/v1"
    down = filetier(home, server, "text", fid, "kimi", KIMI_BASE_URL=down_url)
    assert down.returncode == 17, down.stderr
    line = one_error_line(down)
    assert "kimi" in line and KEY not in down.stdout + down.stderr

    server.fail_next(10, 503)
    failing = filetier(home, server, "provider-id", fid, "kimi")
    assert failing.returncode == 17, failing.stderr
    assert "503" in one_error_line(failing) and KEY not in failing.stderr
    assert server.upload_count == 0 and provider_rows(home) == []


def test_doctor_reports_providers_without_showing_the_key(
    home: Path, server: ProviderServer
) -> None:
    server.seed_file("held.txt", b"one file held")
    proc = filetier(home, server, "doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    kimi = checks["provider kimi"]
    assert kimi["ok"] is True and "answers" in kimi["detail"] and "1 files" in kimi["detail"]
    for name, variable in (("glm", "GLM_API_KEY"), ("openai", "OPENAI_API_KEY")):
        check = checks[f"provider {name}"]
        assert "not configured" in check["detail"] and variable in check["detail"]
    assert server.request_count("GET", "/files") == 1
