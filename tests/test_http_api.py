"""The HTTP API against a real server process on loopback, with httpx as the client.

``LiveServer`` (``tests/support/http.py``, shared with the other ``test_http_*`` modules)
starts ``filetier.interfaces.serve.run`` in a fresh interpreter, configured only through
the environment, exactly as ``filetier serve`` is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from testbed.services import free_port
from tests.support.http import (
    ALICE,
    BOB,
    METRICS,
    METRICS_TOKEN,
    TOKENS,
    LiveServer,
    MiB,
    ThreadServer,
    assert_error,
    read_answer,
    sha,
    upload,
)
from tests.support.prometheus_text import types, value, values


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("http") / "home"
    with LiveServer(
        home, {"FILETIER_API_TOKENS": TOKENS, "FILETIER_METRICS_TOKEN": METRICS_TOKEN}
    ) as live:
        yield live


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ALICE) as client:
        yield client


@pytest.fixture
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(BOB) as client:
        yield client


# -------------------------------------------------------------------- health, metrics, doc


def test_healthz_needs_no_token(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_primary(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_reports_an_unreachable_primary(tmp_path: Path) -> None:
    settings = {
        "FILETIER_API_TOKENS": TOKENS,
        "FILETIER_S3_BUCKET": "nowhere",
        "FILETIER_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "FILETIER_S3_ACCESS_KEY_ID": "k",
        "FILETIER_S3_SECRET_ACCESS_KEY": "s",
        "FILETIER_STORAGE_TIMEOUT_SECONDS": "1",
        "FILETIER_STORAGE_CONNECT_TIMEOUT_SECONDS": "1",
    }
    with LiveServer(tmp_path / "home", settings) as live:
        response = httpx.get(f"{live.url}/readyz", timeout=30)
        assert response.status_code == 503
        # Why is for the operator's log: the probe needs no token and answers any Host.
        assert response.json() == {"status": "not ready"}
        assert "not ready: primary store:" in live.log()


def test_metrics_count_requests_bytes_latency_and_tiers(
    server: LiveServer, alice: httpx.Client
) -> None:
    data = os.urandom(3000)
    fid = upload(alice, data, "metrics.bin")["file_id"]
    assert alice.get(f"/v1/files/{fid}/content").content == data
    httpx.get(f"{server.url}/v1/files")  # a 401, counted under its route

    text = httpx.get(f"{server.url}/metrics", headers=METRICS).text

    total = "filetier_http_requests_total"
    assert value(text, total, route="/v1/files", method="POST", status="201") == 1
    content = value(text, total, route="/v1/files/{file_id}/content", method="GET", status="200")
    assert content is not None and content >= 1
    assert value(text, total, route="/v1/files", method="GET", status="401") == 1
    duration = "filetier_http_request_duration_seconds"
    assert value(text, f"{duration}_bucket", route="/v1/files", method="POST", le="+Inf") == 1
    bytes_in = value(text, "filetier_http_request_body_bytes_total", route="/v1/files")
    assert bytes_in is not None and bytes_in >= len(data)
    out = value(
        text, "filetier_http_response_body_bytes_total", route="/v1/files/{file_id}/content"
    )
    assert out is not None and out >= len(data)
    hits = {labels["tier"]: n for labels, n in values(text, "filetier_tier_hits_total")}
    assert set(hits) == {"memory", "disk", "primary"} and sum(hits.values()) >= 1
    assert types(text)[duration] == "histogram"


def test_openapi_document_is_valid_and_lists_every_v1_route(server: LiveServer) -> None:
    from openapi_spec_validator import validate

    document = httpx.get(f"{server.url}/openapi.json").json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    expected = {
        ("/v1/files", "post"),
        ("/v1/files", "get"),
        ("/v1/files/by-hash", "post"),
        ("/v1/files/{file_id}", "get"),
        ("/v1/files/{file_id}", "delete"),
        ("/v1/files/{file_id}/content", "get"),
        ("/v1/files/{file_id}/content", "head"),
        ("/v1/files/{file_id}/provider-id", "post"),
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert expected <= documented
    for path, method in expected:
        assert document["paths"][path][method]["security"] == [{"bearerAuth": []}]


# ------------------------------------------------------------------------------ upload


def test_upload_streams_the_body_and_records_name_type_and_metadata(alice: httpx.Client) -> None:
    data = b"%PDF-1.7\n" + os.urandom(200_000)
    response = alice.post(
        "/v1/files",
        params={"filename": "report.pdf"},
        content=iter([data[:1000], data[1000:]]),  # chunked: no Content-Length
        headers={"X-Filetier-Metadata": json.dumps({"project": "apollo", "n": 1})},
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert response.headers["location"] == f"/v1/files/{result['file_id']}"
    assert result["sha256"] == sha(data) and result["size"] == len(data)
    assert result["mime_type"] == "application/pdf" and result["filename"] == "report.pdf"
    assert result["deduplicated"] is False and result["bytes_written"] == len(data)

    record = alice.get(f"/v1/files/{result['file_id']}").json()
    assert record["metadata"] == {"project": "apollo", "n": 1}
    assert record["filename"] == "report.pdf" and record["sha256"] == sha(data)
    assert "storage_key" not in record


def test_upload_takes_the_name_from_content_disposition(alice: httpx.Client) -> None:
    response = alice.post(
        "/v1/files",
        content=b"bonjour",
        headers={"Content-Disposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"},
    )
    assert response.status_code == 201
    assert response.json()["filename"] == "résumé.txt"
    plain = alice.post(
        "/v1/files",
        content=b"x",
        headers={"Content-Disposition": 'inline; filename="../../a b.txt"'},
    )
    assert plain.json()["filename"] == "../../a b.txt"  # a name, never used as a path here


def test_upload_of_content_you_already_store_is_deduplicated(alice: httpx.Client) -> None:
    data = os.urandom(5000)
    first = upload(alice, data, "one.bin")
    second = upload(alice, data, "two.bin")
    assert first["file_id"] != second["file_id"]
    assert second["deduplicated"] is True and second["bytes_written"] == 0


def test_upload_with_bad_metadata_or_type_is_refused(alice: httpx.Client) -> None:
    not_json = alice.post("/v1/files", content=b"x", headers={"X-Filetier-Metadata": "{nope"})
    assert_error(not_json, 400, "InvalidMetadataError")
    a_list = alice.post("/v1/files", content=b"x", headers={"X-Filetier-Metadata": "[1]"})
    assert_error(a_list, 400, "InvalidMetadataError")
    bad_type = alice.post("/v1/files", params={"mime_type": "text/html\r\nX: y"}, content=b"x")
    assert_error(bad_type, 400, "InvalidInputError")


def test_upload_over_content_length_limit_is_refused_before_the_body(tmp_path: Path) -> None:
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_MAX_FILE_SIZE": str(1 * MiB)}
    with LiveServer(tmp_path / "home", settings) as live:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/files?filename=big.bin HTTP/1.1\r\n"
                + f"Host: 127.0.0.1:{live.port}\r\n".encode()
                + f"Authorization: Bearer {ALICE}\r\n".encode()
                + f"Content-Length: {10 * MiB}\r\n\r\n".encode()
            )
            # Not one body byte was sent: the answer cannot have waited for it.
            head, body = read_answer(sock)
        assert head.startswith("HTTP/1.1 413 ")
        assert json.loads(body)["error"]["type"] == "FileTooLargeError"

        with live.client() as client:
            assert client.get("/v1/files").json()["total"] == 0


def test_upload_streamed_past_the_limit_gets_413_while_still_sending(tmp_path: Path) -> None:
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_MAX_FILE_SIZE": str(4 * MiB)}
    with LiveServer(tmp_path / "home", settings) as live:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/files?filename=big.bin HTTP/1.1\r\n"
                + f"Host: 127.0.0.1:{live.port}\r\n".encode()
                + f"Authorization: Bearer {ALICE}\r\n".encode()
                + b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = os.urandom(256 * 1024)
            framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            sock.settimeout(0.05)
            answer = b""
            sent = 0
            # Keep sending (the client never finishes: no terminating chunk) until the
            # server answers; it must do so soon after 4 MiB, not after the end.
            while sent < 64 * MiB and not answer:
                try:
                    sock.sendall(framed)
                    sent += len(chunk)
                except OSError:
                    break  # the server closed the connection after answering
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    continue
            sock.settimeout(5)
            head, body = read_answer(sock, answer)
        assert head.startswith("HTTP/1.1 413 "), head
        assert json.loads(body)["error"]["type"] == "FileTooLargeError"
        assert sent < 16 * MiB, f"the client sent {sent} bytes before the 413"
        # Nothing of the partial upload remains.
        staging = [p for p in (tmp_path / "home").rglob("*") if p.is_file() and ".tmp" in p.name]
        assert staging == []


def test_large_streamed_upload_does_not_grow_server_memory(tmp_path: Path) -> None:
    with (
        LiveServer(tmp_path / "home", {"FILETIER_API_TOKENS": TOKENS}) as live,
        live.client() as client,
    ):
        assert client.get("/v1/files").status_code == 200  # warm: imports, database
        before = live.rss_peak_kib()
        block = os.urandom(MiB)
        digest = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for _ in range(256):
                digest.update(block)
                yield block

        response = client.post("/v1/files", params={"filename": "big.bin"}, content=body())
        after = live.rss_peak_kib()
    assert response.status_code == 201
    assert response.json()["sha256"] == digest.hexdigest()
    assert after - before < 48 * 1024, f"peak RSS grew by {(after - before) // 1024} MiB"


def test_owner_quota_is_enforced(tmp_path: Path) -> None:
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_OWNER_QUOTA_BYTES": "10000"}
    with LiveServer(tmp_path / "home", settings) as live, live.client() as client:
        upload(client, os.urandom(8000), "fits.bin")
        declared = client.post("/v1/files", params={"filename": "no.bin"}, content=os.urandom(5000))
        assert_error(declared, 413, "QuotaExceededError")
        streamed = client.post(
            "/v1/files", params={"filename": "no.bin"}, content=iter([os.urandom(5000)])
        )
        assert_error(streamed, 413, "QuotaExceededError")
        with live.client(BOB) as bob:  # quotas are per owner
            upload(bob, os.urandom(8000), "bob.bin")


# ------------------------------------------------------------------ hash-first upload


def test_hash_first_upload_skips_the_transfer_of_known_content(alice: httpx.Client) -> None:
    data = os.urandom(70_000)
    original = upload(alice, data, "original.bin")

    response = alice.post(
        "/v1/files/by-hash",
        json={"sha256": sha(data).upper(), "size": len(data), "filename": "copy.bin"},
    )

    assert response.status_code == 201, response.text
    result = response.json()
    assert result["deduplicated"] is True and result["bytes_written"] == 0
    assert result["file_id"] != original["file_id"] and result["filename"] == "copy.bin"
    assert response.headers["location"] == f"/v1/files/{result['file_id']}"
    assert alice.get(f"/v1/files/{result['file_id']}/content").content == data
    # Both records stand alone: deleting the original keeps the copy readable.
    assert alice.delete(f"/v1/files/{original['file_id']}").status_code == 204
    assert alice.get(f"/v1/files/{result['file_id']}/content").content == data


def test_hash_first_upload_of_unknown_content_asks_for_the_body(alice: httpx.Client) -> None:
    data = os.urandom(1000)
    unknown = alice.post(
        "/v1/files/by-hash", json={"sha256": sha(data), "size": len(data), "filename": "n.bin"}
    )
    assert_error(unknown, 404, "NotFoundError")
    assert "POST /v1/files" in unknown.json()["error"]["message"]
    upload(alice, data, "n.bin")
    wrong_size = alice.post(
        "/v1/files/by-hash", json={"sha256": sha(data), "size": 999, "filename": "n.bin"}
    )
    assert_error(wrong_size, 404)


@pytest.mark.parametrize(
    "body",
    [
        {"sha256": "00" * 32, "size": 1},
        {"sha256": "xyz", "size": 1, "filename": "a"},
        {"sha256": "00" * 32, "size": -1, "filename": "a"},
        {"sha256": "00" * 32, "size": True, "filename": "a"},
        {"sha256": "00" * 32, "size": 1, "filename": "a", "extra": 1},
        {"sha256": "00" * 32, "size": 1, "filename": "a", "metadata": [1]},
        [1, 2],
    ],
)
def test_hash_first_upload_validates_its_body(alice: httpx.Client, body: Any) -> None:
    assert alice.post("/v1/files/by-hash", json=body).status_code == 400


def test_hash_first_upload_validates_json(alice: httpx.Client) -> None:
    response = alice.post("/v1/files/by-hash", content=b"{not json")
    assert_error(response, 400, "InvalidInputError")


# -------------------------------------------------------------------- list and metadata


def test_list_filters_and_pages(alice: httpx.Client) -> None:
    tag = os.urandom(4).hex()
    ids = [upload(alice, f"{tag} {i}".encode(), f"{tag}-{i}.txt")["file_id"] for i in range(3)]
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(50)
    image = upload(alice, png, f"{tag}-pic.png")

    page = alice.get("/v1/files", params={"name": tag, "limit": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["next_offset"] == 2
    rest = alice.get("/v1/files", params={"name": tag, "limit": 2, "offset": 2}).json()
    assert rest["next_offset"] is None
    listed = {item["file_id"] for item in page["items"] + rest["items"]}
    assert listed == {*ids, image["file_id"]}

    images = alice.get("/v1/files", params={"name": tag, "type": "image/*"}).json()
    assert [i["file_id"] for i in images["items"]] == [image["file_id"]]
    by_hash = alice.get("/v1/files", params={"sha256": sha(png)}).json()
    assert image["file_id"] in {i["file_id"] for i in by_hash["items"]}


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"offset": "-1"}, {"name": "a\x00"}],
)
def test_list_rejects_bad_parameters(alice: httpx.Client, params: dict[str, str]) -> None:
    assert_error(alice.get("/v1/files", params=params), 400)


def test_metadata_of_unknown_and_malformed_ids(alice: httpx.Client) -> None:
    assert_error(alice.get("/v1/files/0192b5e0-7c1a-7d3e-9f00-1a2b3c4d5e6f"), 404, "NotFoundError")
    assert_error(alice.get("/v1/files/not-a-uuid!"), 400, "InvalidFileIdError")


def test_unknown_routes_and_methods_answer_json(alice: httpx.Client) -> None:
    assert_error(alice.get("/v1/nothing"), 404)
    wrong = alice.put("/v1/files")
    assert_error(wrong, 405)
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


# ---------------------------------------------------------------------------- download


def test_download_headers_and_body(alice: httpx.Client) -> None:
    data = os.urandom(100_000)
    fid = upload(alice, data, "photo album.bin")["file_id"]

    response = alice.get(f"/v1/files/{fid}/content")

    assert response.status_code == 200
    assert response.content == data
    headers = response.headers
    assert headers["etag"] == f'"{sha(data)}"'
    assert headers["repr-digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
    )
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-length"] == str(len(data))
    assert headers["content-disposition"] == 'attachment; filename="photo album.bin"'
    assert headers["x-content-type-options"] == "nosniff"


def test_large_download_is_streamed_from_the_verified_file(alice: httpx.Client) -> None:
    data = os.urandom(9 * MiB + 123)  # above the memory tier's item size: read in place
    fid = upload(alice, data, "large.bin")["file_id"]
    digest = hashlib.sha256()
    sizes = []
    with alice.stream("GET", f"/v1/files/{fid}/content") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            digest.update(chunk)
            sizes.append(len(chunk))
    assert digest.hexdigest() == sha(data) and sum(sizes) == len(data)


def test_head_gives_the_headers_without_a_body(alice: httpx.Client) -> None:
    data = os.urandom(12 * MiB)
    fid = upload(alice, data, "h.bin")["file_id"]
    response = alice.head(f"/v1/files/{fid}/content")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["etag"] == f'"{sha(data)}"'
    assert "repr-digest" in response.headers


@pytest.mark.parametrize("form", ['"{}"', 'W/"{}"', '"other", "{}"', "*"])
def test_if_none_match_gives_304(alice: httpx.Client, form: str) -> None:
    data = os.urandom(2000)
    fid = upload(alice, data, "c.bin")["file_id"]
    response = alice.get(
        f"/v1/files/{fid}/content", headers={"If-None-Match": form.format(sha(data))}
    )
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == f'"{sha(data)}"'
    other = alice.get(f"/v1/files/{fid}/content", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.content == data


def test_empty_file(alice: httpx.Client) -> None:
    fid = upload(alice, b"", "empty.txt")["file_id"]
    response = alice.get(f"/v1/files/{fid}/content")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["etag"] == f'"{sha(b"")}"'


def test_a_corrupt_copy_aborts_the_download_before_its_last_byte(
    server: LiveServer, alice: httpx.Client
) -> None:
    data = os.urandom(6 * MiB)
    fid = upload(alice, data, "rot.bin")["file_id"]
    digest = sha(data)
    stored = server.home / "objects" / "sha256" / digest[:2] / digest[2:4] / digest
    assert stored.exists()
    with stored.open("r+b") as handle:  # bit rot in the middle of the primary object
        handle.seek(3 * MiB)
        handle.write(bytes([handle.read(1)[0] ^ 0xFF]))

    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        alice.stream("GET", f"/v1/files/{fid}/content") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    assert len(received) < len(data)  # never a complete, wrong file

    # The object was quarantined: the next read fails instead of serving it.
    again = alice.get(f"/v1/files/{fid}/content")
    assert again.status_code in {500, 503}
    assert again.json()["error"]["type"] in {"IntegrityError", "StorageUnavailableError"}
    assert str(server.home) not in again.text


def copies_counters(client: httpx.Client) -> tuple[int, int]:
    text = client.get("/metrics", headers=METRICS).text
    hashed = value(text, "filetier_http_copies_hashed_total")
    trusted = value(text, "filetier_http_copies_trusted_total")
    assert hashed is not None and trusted is not None
    return int(hashed), int(trusted)


def stream_all(client: httpx.Client, fid: str) -> bytes:
    with client.stream("GET", f"/v1/files/{fid}/content") as response:
        assert response.status_code == 200
        return response.read()


def test_a_copy_hashed_in_full_is_trusted_while_unchanged_and_hashed_again_once_touched(
    server: LiveServer, alice: httpx.Client
) -> None:
    """Within FILETIER_VERIFIED_COPY_SECONDS the same unchanged copy is served without a
    second SHA-256 pass; any write to it (even one that puts the mtime back) changes its
    identity, so the damage is caught before the last byte."""
    data = os.urandom(6 * MiB)
    fid = upload(alice, data, "hot.bin")["file_id"]
    hashed, trusted = copies_counters(alice)
    assert stream_all(alice, fid) == data
    assert copies_counters(alice) == (hashed + 1, trusted)
    assert stream_all(alice, fid) == data
    assert stream_all(alice, fid) == data
    assert copies_counters(alice) == (hashed + 1, trusted + 2)

    digest = sha(data)
    stored = server.home / "objects" / "sha256" / digest[:2] / digest[2:4] / digest
    before = stored.stat()
    with stored.open("r+b") as handle:
        handle.seek(5 * MiB)
        handle.write(bytes([handle.read(1)[0] ^ 0xFF]))
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide it from mtime
    assert stored.stat().st_mtime_ns == before.st_mtime_ns

    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        alice.stream("GET", f"/v1/files/{fid}/content") as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert len(received) < len(data)
    assert copies_counters(alice)[1] == trusted + 2  # not served from the window


def test_with_the_window_off_every_whole_download_is_hashed(tmp_path: Path) -> None:
    settings = {
        "FILETIER_API_TOKENS": TOKENS,
        "FILETIER_VERIFIED_COPY_SECONDS": "0",
        "FILETIER_METRICS_TOKEN": METRICS_TOKEN,
    }
    with LiveServer(tmp_path / "home", settings) as live, live.client(ALICE) as client:
        data = os.urandom(6 * MiB)  # above the memory tier's item size
        fid = upload(client, data, "cold.bin")["file_id"]
        for _ in range(3):
            assert stream_all(client, fid) == data
        assert copies_counters(client) == (3, 0)


# ------------------------------------------------------------------ content disposition


def test_filename_with_crlf_and_unicode_cannot_inject_headers(server: LiveServer) -> None:
    crlf = 'évil "q" \\ \r\nSet-Cookie: pwned=1\r\n\r\n<html>ünï 文件.txt'
    name = 'évil "q" \\ Set-Cookie: pwned=1<html>ünï 文件.txt'
    with server.client() as client:
        # A name with control characters is refused outright (names stored before that
        # rule are still encoded safely: test_content_disposition_encoding).
        assert_error(client.post("/v1/files", params={"filename": crlf}, content=b"x"), 400)
        fid = upload(client, b"payload", name)["file_id"]
        stored = client.get(f"/v1/files/{fid}").json()["filename"]
    assert stored == name

    # Read the raw response head: exactly the headers we sent, nothing injected.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/files/{fid}/content HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {ALICE}\r\nConnection: close\r\n\r\n".encode()
        )
        head, body = read_answer(sock)
    assert body == b"payload"
    lines = head.split("\r\n")
    assert not any(line.lower().startswith("set-cookie") for line in lines)
    disposition = [line for line in lines if line.lower().startswith("content-disposition:")]
    assert len(disposition) == 1
    value = disposition[0].split(":", 1)[1].strip()
    assert all(32 <= ord(ch) < 127 for ch in value)
    fallback = re.search(r'filename="([^"]*)"', value)
    assert fallback is not None and "\\" not in fallback.group(1)
    encoded = re.search(r"filename\*=UTF-8''(\S+)", value)
    assert encoded is not None
    from urllib.parse import unquote

    assert unquote(encoded.group(1)) == 'évil "q" \\ Set-Cookie: pwned=1<html>ünï 文件.txt'


def test_content_disposition_encoding() -> None:
    from filetier.interfaces.http.headers import content_disposition, filename_from_disposition

    assert content_disposition("a.txt") == 'attachment; filename="a.txt"'
    assert content_disposition("") == 'attachment; filename="download"'
    value = content_disposition("naïve\x00\x7f\u2028.txt")
    assert value == "attachment; filename=\"naive.txt\"; filename*=UTF-8''na%C3%AFve.txt"
    assert filename_from_disposition(value) == "naïve.txt"
    assert filename_from_disposition('attachment; filename="a \\"b\\".txt"') == 'a "b".txt'
    assert filename_from_disposition("attachment") is None
    assert (
        filename_from_disposition(f"attachment; filename*=UTF-8''{quote('日本.txt')}") == "日本.txt"
    )


# ---------------------------------------------------------------------- delete


def test_delete_removes_the_file(alice: httpx.Client) -> None:
    fid = upload(alice, os.urandom(500), "gone.bin")["file_id"]
    response = alice.delete(f"/v1/files/{fid}")
    assert response.status_code == 204 and response.content == b""
    assert_error(alice.get(f"/v1/files/{fid}"), 404)
    assert_error(alice.get(f"/v1/files/{fid}/content"), 404)
    assert_error(alice.delete(f"/v1/files/{fid}"), 404)


# -------------------------------------------------------------------- provider id


def test_provider_id_without_a_configured_provider(alice: httpx.Client) -> None:
    fid = upload(alice, b"hello", "p.txt")["file_id"]
    response = alice.post(f"/v1/files/{fid}/provider-id", json={"provider": "kimi"})
    assert_error(response, 400, "ProviderNotConfiguredError")
    assert_error(alice.post(f"/v1/files/{fid}/provider-id", json={}), 400)
    assert_error(alice.post(f"/v1/files/{fid}/provider-id", json={"provider": "kimi", "x": 1}), 400)


def test_provider_id_uploads_once(tmp_path: Path) -> None:
    from testbed.provider_server import ProviderServer

    with ProviderServer(api_key="sk-test-provider-key-123456") as provider:
        settings = {
            "FILETIER_API_TOKENS": TOKENS,
            "KIMI_API_KEY": provider.api_key,
            "KIMI_BASE_URL": provider.base_url,
        }
        with LiveServer(tmp_path / "home", settings) as live, live.client() as client:
            fid = upload(client, b"some text for the model", "doc.txt")["file_id"]
            first = client.post(f"/v1/files/{fid}/provider-id", json={"provider": "kimi"})
            assert first.status_code == 200, first.text
            second = client.post(
                f"/v1/files/{fid}/provider-id", json={"provider": "kimi", "verify": True}
            )
            with live.client(BOB) as bob:
                hidden = bob.post(f"/v1/files/{fid}/provider-id", json={"provider": "kimi"})
    assert first.json()["uploaded"] is True and first.json()["file_id"] == fid
    assert first.json()["provider"] == "kimi" and first.json()["purpose"]
    assert second.json()["uploaded"] is False
    assert second.json()["provider_file_id"] == first.json()["provider_file_id"]
    assert_error(hidden, 404, "NotFoundError")


# -------------------------------------------------------------------- lifecycle


def test_graceful_shutdown_lets_a_transfer_finish(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "home", {"FILETIER_API_TOKENS": TOKENS}).start()
    try:
        data = os.urandom(24 * MiB)
        with live.client() as client:
            fid = upload(client, data, "slow.bin")["file_id"]
            digest = hashlib.sha256()
            with client.stream("GET", f"/v1/files/{fid}/content") as response:
                stream = response.iter_raw(64 * 1024)
                digest.update(next(stream))
                live.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                for chunk in stream:
                    digest.update(chunk)
                    time.sleep(0.0005)
        assert digest.hexdigest() == sha(data)
        assert live.process.wait(30) == 0  # type: ignore[union-attr]
    finally:
        live.stop()


def test_shutdown_timeout_aborts_a_stalled_transfer_cleanly(tmp_path: Path) -> None:
    live = LiveServer(
        tmp_path / "home", {"FILETIER_API_TOKENS": TOKENS}, graceful_seconds=1
    ).start()
    try:
        data = os.urandom(32 * MiB)
        with live.client() as client:
            fid = upload(client, data, "stalled.bin")["file_id"]
            received = 0
            with (
                pytest.raises(httpx.TransportError),
                client.stream("GET", f"/v1/files/{fid}/content") as response,
            ):
                stream = response.iter_raw(64 * 1024)
                received += len(next(stream))
                live.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                time.sleep(3)  # the client stalls past the grace period
                for chunk in stream:
                    received += len(chunk)
        assert received < len(data)
        assert live.process.wait(30) == 0  # type: ignore[union-attr]
    finally:
        live.stop()


def test_concurrent_uploads_and_downloads(server: LiveServer) -> None:
    blobs = [os.urandom(300_000 + i) for i in range(8)]
    failures: list[str] = []

    def worker(data: bytes) -> None:
        with server.client() as client:
            fid = upload(client, data, "c.bin")["file_id"]
            if client.get(f"/v1/files/{fid}/content").content != data:
                failures.append(fid)

    threads = [threading.Thread(target=worker, args=(b,)) for b in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []


# ---------------------------------------------------------------- error bodies, in-process


def test_errors_never_show_a_traceback_or_an_internal_path(tmp_path: Path) -> None:
    from starlette.requests import Request
    from starlette.routing import Route

    from filetier import Settings
    from filetier.errors import InsufficientSpaceError
    from filetier.interfaces.app import build_app

    home = tmp_path / "home"
    settings = Settings(home=home, fsync=False, api_tokens=TOKENS)
    app = build_app(settings)

    async def crash(request: Request) -> Any:
        raise RuntimeError(f"boom in {home}/objects/secret")

    async def full(request: Request) -> Any:
        raise InsufficientSpaceError(f"not enough free space in {home / 'cache' / 'tmp'}")

    app.router.routes += [Route("/v1/crash", crash), Route("/v1/full", full)]
    with ThreadServer(app) as live:
        # One connection each: after an unexpected error uvicorn closes the connection.
        headers = {"Authorization": f"Bearer {ALICE}"}
        crashed = httpx.get(f"{live.url}/v1/crash", headers=headers)
        no_space = httpx.get(f"{live.url}/v1/full", headers=headers)
    assert_error(crashed, 500, "InternalError")
    assert "boom" not in crashed.text and str(home) not in crashed.text
    assert_error(no_space, 507, "InsufficientSpaceError")
    assert str(home) not in no_space.text
    assert "<filetier>" in no_space.json()["error"]["message"]
