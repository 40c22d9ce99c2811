"""Slow clients against a real ``filetier serve``: a request head trickled byte by byte gets
408 and a closed connection; a body trickled below the minimum rate gets its connection
closed and leaves nothing staged; honest clients, fast or merely slowish, are served.

The server runs with a 1 s head timeout and a 1,024 bytes/s body floor
(``FILETIER_HTTP_HEAD_TIMEOUT_SECONDS``, ``FILETIER_HTTP_MIN_BODY_RATE``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reliability.load import Server
from tests.support.http import read_answer

HEAD_TIMEOUT = 1.0
MIN_BODY_RATE = 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("deadlines")
    served = Server(
        root / "home",
        secrets.token_urlsafe(24),
        FILETIER_HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        FILETIER_HTTP_MIN_BODY_RATE=str(MIN_BODY_RATE),
    )
    served.start()
    try:
        yield served
    finally:
        assert served.stop() == 0, served.log_tail()


def upload_head(server: Server, name: str, length: int) -> bytes:
    return (
        f"POST /v1/files?filename={name} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.token}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def trickle(sock: socket.socket, data: bytes, every: float, limit: float) -> tuple[bytes, float]:
    """Send ``data`` a byte per ``every`` seconds until the server answers or closes (or
    ``limit`` seconds pass); what the server sent and when it ended."""
    began = time.monotonic()
    sock.settimeout(every)
    received = b""
    for byte in data:
        if time.monotonic() - began > limit:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break  # closed under us
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        received += chunk
        if not chunk:
            break
        # Answered: read until the server closes.
        sock.settimeout(5)
        while chunk:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            received += chunk
        break
    return received, time.monotonic() - began


def staged_files(server: Server) -> list[Path]:
    return [
        Path(dirpath) / name
        for dirpath, _dirs, names in os.walk(server.home)
        if ".staging" in Path(dirpath).parts
        for name in names
    ]


def listed_names(server: Server) -> list[str]:
    response = httpx.get(
        f"{server.base}/v1/files",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [item["filename"] for item in response.json()["items"]]


def test_a_head_trickled_past_the_timeout_gets_408_and_a_closed_connection(
    server: Server,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        received, took = trickle(sock, upload_head(server, "slow-head.bin", 10), 0.2, 10)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received[:200]
    assert b"request headers not received in time" in received
    assert HEAD_TIMEOUT * 0.9 <= took < HEAD_TIMEOUT + 3, took
    assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200


def test_a_body_trickled_below_the_minimum_rate_is_cut_off_and_nothing_is_kept(
    server: Server,
) -> None:
    before = listed_names(server)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(upload_head(server, "slow-body.bin", 100_000))
        received, took = trickle(sock, b"x" * 100_000, 0.05, 15)  # 20 bytes/s
    assert received == b"", received[:200]  # closed without an answer
    assert took < HEAD_TIMEOUT + 4, took
    deadline = time.monotonic() + 5
    while staged_files(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staged_files(server) == []
    assert listed_names(server) == before
    assert "under the minimum of 1024 bytes/s" in server.log_tail(50)


def test_an_idle_keep_alive_connection_must_send_its_next_head_in_time(
    server: Server,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        head, body = read_answer(sock)
        assert head.startswith("HTTP/1.1 200"), head
        assert body == b'{"status":"ok"}'
        received, took = trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0.2, 10)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert took < HEAD_TIMEOUT + 3, took


def test_honest_clients_are_served_a_head_in_pieces_and_a_slowish_body(
    server: Server,
) -> None:
    # A head in three pieces well inside the timeout, then a 48 KiB body at ~16 KiB/s for
    # three seconds: slower than loopback, far above the floor.
    body = os.urandom(48 * 1024)
    head = upload_head(server, "honest.bin", len(body))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for piece in (head[:20], head[20:60], head[60:]):
            sock.sendall(piece)
            time.sleep(0.2)
        for offset in range(0, len(body), 4096):
            sock.sendall(body[offset : offset + 4096])
            time.sleep(0.25)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert hashlib.sha256(body).hexdigest().encode() in answer
    assert "honest.bin" in listed_names(server)


def test_a_connection_that_never_sends_a_byte_is_closed_quietly(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(HEAD_TIMEOUT + 5)
        began = time.monotonic()
        assert sock.recv(65536) == b""
        assert time.monotonic() - began < HEAD_TIMEOUT + 3
