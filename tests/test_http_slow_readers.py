"""Clients that request a large file and never read it, against a real ``filetier serve``
over real sockets: each is cut off once it has held up its response for the head timeout
below the minimum response rate, the memory they pinned is given back, the number of
connections is bounded, and honest clients are served throughout.

The server runs with a 2 s head timeout (``FILETIER_HTTP_HEAD_TIMEOUT_SECONDS``, also the
window of ``FILETIER_HTTP_MIN_RESPONSE_RATE``) and an 8 MiB read-ahead budget.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http import ALICE, TOKENS, LiveServer, MiB, upload

HEAD_TIMEOUT = 2
CLIENTS = 100
SIZE = 16 * MiB


def rss_mib(live: LiveServer) -> int:
    assert live.process is not None
    status = Path(f"/proc/{live.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]


def open_never_reading(live: LiveServer, path: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little
    sock.connect(("127.0.0.1", live.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ALICE}\r\n\r\n".encode()
    )
    return sock


def drain(sock: socket.socket, timeout: float = 15) -> int:
    """Read until the server ends the connection; the bytes received."""
    sock.settimeout(timeout)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return received


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = {
        "FILETIER_API_TOKENS": TOKENS,
        "FILETIER_HTTP_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "FILETIER_HTTP_READ_AHEAD_BYTES": "8MiB",
        "FILETIER_HTTP_MAX_CONNECTIONS": "150",
    }
    with LiveServer(tmp_path_factory.mktemp("slow") / "home", settings) as server:
        yield server


def test_readers_that_never_read_are_cut_off_and_their_memory_returns(live: LiveServer) -> None:
    with live.client(ALICE) as alice:
        data = os.urandom(SIZE)
        fid = upload(alice, data, "big.bin")["file_id"]
        assert alice.get(f"/v1/files/{fid}/content").content == data
        baseline = rss_mib(live)

        began = time.monotonic()
        stalled = [open_never_reading(live, f"/v1/files/{fid}/content") for _ in range(CLIENTS)]
        time.sleep(1)
        # An honest client is served meanwhile.
        assert alice.get(f"/v1/files/{fid}/content").content == data
        deadline = time.monotonic() + 30
        while live.log().count("response read at") < CLIENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        cut_after = time.monotonic() - began
        after = rss_mib(live)
        received = [drain(sock) for sock in stalled]

        # Every one was cut (reading now would otherwise fetch all 16 MiB), within the
        # window plus a little.
        assert max(received) < SIZE, max(received)
        assert live.log().count("response read at") == CLIENTS
        assert cut_after < 3 * HEAD_TIMEOUT + 5, cut_after
        # Before the fix each held ~4.3 MiB for as long as it stayed connected.
        assert after - baseline < 64, (baseline, after)
        assert alice.get(f"/v1/files/{fid}/content").content == data


def test_a_slow_but_steady_reader_is_served_in_full(live: LiveServer) -> None:
    data = os.urandom(4 * MiB + 123)  # past the memory tier: streamed from the file
    with live.client(ALICE) as alice:
        fid = upload(alice, data, "steady.bin")["file_id"]
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
    sock.sendall(
        f"GET /v1/files/{fid}/content HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ALICE}\r\nConnection: close\r\n\r\n".encode()
    )
    received = b""
    began = time.monotonic()
    while time.monotonic() - began < 60:
        chunk = sock.recv(64 * 1024)  # at most ~1.3 MiB/s: slow, far above the floor
        if not chunk:
            break
        received += chunk
        time.sleep(0.05)
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == data


def test_connections_beyond_the_limit_get_503(tmp_path: Path) -> None:
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_HTTP_MAX_CONNECTIONS": "4"}
    with LiveServer(tmp_path / "home", settings) as server:
        held = []
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", server.port))
            held.append(sock)
        time.sleep(0.3)
        try:
            refused = httpx.get(
                f"{server.url}/v1/files", headers={"Authorization": f"Bearer {ALICE}"}
            )
            assert refused.status_code == 503
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        with server.client(ALICE) as alice:
            assert alice.get("/v1/files").status_code == 200
