"""The HTTP API under test: ``filetier serve`` in a child process, or an app built in this
process served by uvicorn in a thread; tokens for two owners and the checks every HTTP test
makes of an upload and an error body.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx

from testbed.services import free_port

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-fedcba9876543210"
TOKENS = f"alice:{ALICE},bob:{BOB}"
METRICS_TOKEN = "metrics-token-0123456789abcdef"  # noqa: S105 - a test token
METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}
MiB = 1024 * 1024

_SERVE = (
    "import sys\n"
    "from filetier.config import Settings\n"
    "from filetier.errors import ConfigError\n"
    "from filetier.interfaces.serve import run\n"
    "try:\n"
    "    run(Settings(), sys.argv[1], int(sys.argv[2]), graceful_shutdown_seconds=int(sys.argv[3]))\n"
    "except ConfigError as exc:\n"
    "    print(f'error: {exc}', file=sys.stderr)\n"
    "    sys.exit(3)\n"
)
_ENV_PREFIXES = ("FILETIER_", "SUPABASE_", "KIMI_", "GLM_", "OPENAI_")
_ENV_NAMES = ("DATABASE_URL", "FILE_CACHE_DIR", "MAX_MEMORY_CACHE_SIZE", "MAX_CACHE_SIZE_MB")


def server_env(home: Path, **settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_ENV_PREFIXES) and k not in _ENV_NAMES
    }
    env.update(
        FILETIER_HOME=str(home),
        FILETIER_FSYNC="false",
        FILETIER_BOOKKEEPING_FLUSH_SECONDS="0.05",
    )
    env.update(settings)
    return env


@dataclass
class LiveServer:
    """``filetier serve`` in its own process, on 127.0.0.1 and a free port."""

    home: Path
    settings: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    graceful_seconds: int = 30
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, wait: bool = True) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = (self.home.parent / f"server-{self.port}.log").open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, self.host, str(self.port), str(self.graceful_seconds)],
            env=server_env(self.home, **self.settings),
            cwd=self.home.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return (self.home.parent / f"server-{self.port}.log").read_text(errors="replace")

    def client(self, token: str | None = ALICE, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def rss_peak_kib(self) -> int:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]

    def stop(self, timeout: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upload(
    client: httpx.Client, data: bytes, name: str = "notes.txt", **params: str
) -> dict[str, Any]:
    response = client.post("/v1/files", params={"filename": name, **params}, content=data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def read_answer(sock: socket.socket, already: bytes = b"") -> tuple[str, bytes]:
    """One HTTP response read from a raw socket: (head, body), body by Content-Length."""
    raw = already
    while b"\r\n\r\n" not in raw:
        more = sock.recv(65536)
        if not more:
            break
        raw += more
    head, _, body = raw.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    while length is not None and len(body) < int(length.group(1)):
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head.decode("latin-1"), body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_error(response: httpx.Response, status: int, kind: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    if kind is not None:
        assert body["error"]["type"] == kind
    assert "Traceback" not in response.text and "/home" not in response.text


class ThreadServer:
    """uvicorn serving an app built in this process, on 127.0.0.1 and a free port, in a
    daemon thread; ``url`` is the server's base URL."""

    # Subclasses may pin uvicorn's protocol implementations (the MCP tests use h11).
    uvicorn_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", **self.uvicorn_options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return self.base_url

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"
