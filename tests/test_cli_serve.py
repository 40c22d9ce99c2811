"""`filetier serve` and `filetier mcp` as users start them: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testbed.services import answers, free_port

CLI = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    env.pop("DATABASE_URL", None)
    env.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"}, **extra)
    return env


def test_serve_without_configuration_refuses_to_run_open_to_the_network(home: Path) -> None:
    proc = subprocess.run(
        [*CLI, "serve", "--port", str(free_port())],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and "token" in lines[-1].lower()
    assert "Traceback" not in proc.stderr


def test_serve_no_auth_on_loopback_round_trip_and_graceful_shutdown(
    home: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*CLI, "serve", "--no-auth", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers(f"{base}/healthz"):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        up = httpx.post(f"{base}/v1/files", params={"filename": "n.txt"}, content=b"served bytes")
        assert up.status_code == 201, up.text
        file_id = up.json()["file_id"]
        got = httpx.get(f"{base}/v1/files/{file_id}/content")
        assert got.content == b"served bytes"
        assert got.headers["etag"] == f'"{up.json()["sha256"]}"'
    finally:
        server.send_signal(signal.SIGINT)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("serve did not stop on SIGINT")
    log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    # The download's bookkeeping was flushed on the way out.
    history = subprocess.run(
        [*CLI, "history", file_id, "--json"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert history.returncode == 0, history.stderr
    assert len(json.loads(history.stdout)) == 1
