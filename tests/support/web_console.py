"""A real ``filetier serve`` process and a real headless Chromium, for the console tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbed.services import answers, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "tmp" / "artifacts" / "web-console"
CLI = [sys.executable, "-c", "from filetier.interfaces.cli.app import main; main()"]

OPERATOR_TOKEN = "operator-token-0123456789"  # noqa: S105 - test tokens
ALICE_TOKEN = "alice-token-0123456789abc"  # noqa: S105
BOB_TOKEN = "bob-token-0123456789abcdef"  # noqa: S105


@dataclass(frozen=True)
class Server:
    base: str
    home: Path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FILETIER_", "SUPABASE_"))}
    env.pop("DATABASE_URL", None)
    env.update({"FILETIER_HOME": str(home), "FILETIER_FSYNC": "0"}, **extra)
    return env


def cli(home: Path, *args: str) -> str:
    """``filetier <args>`` against ``home``; its stdout."""
    done = subprocess.run(
        [*CLI, *args], env=cli_env(home), capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


@contextmanager
def console_server(home: Path, log_path: Path, **env_extra: str) -> Iterator[Server]:
    env = cli_env(
        home,
        **{
            "FILETIER_BOOKKEEPING_FLUSH_SECONDS": "0.05",
            "FILETIER_API_TOKENS": (
                f"default:{OPERATOR_TOKEN},alice:{ALICE_TOKEN},bob:{BOB_TOKEN}"
            ),
            **env_extra,
        },
    )
    port = free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*CLI, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not answers(f"{base}/healthz"):
                if server.poll() is not None:
                    raise RuntimeError(log_path.read_text())
                if time.monotonic() > deadline:
                    raise RuntimeError("filetier serve did not start in 60 s")
                time.sleep(0.1)
            yield Server(base, home)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
