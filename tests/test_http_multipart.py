"""Uploads as clients send them: ``multipart/form-data`` from ``curl -F``, httpx/requests
``files=`` and browsers, against a real server."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.http import ALICE, TOKENS, LiveServer, assert_error

LIMIT = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("multipart") / "home"
    settings = {"FILETIER_API_TOKENS": TOKENS, "FILETIER_MAX_FILE_SIZE": str(LIMIT)}
    with LiveServer(home, settings) as live:
        yield live


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ALICE) as client:
        yield client


def test_a_form_upload_stores_the_file_part_with_its_name_and_type(alice: httpx.Client) -> None:
    data = b"%PDF-1.4\n" + os.urandom(2 * 1024 * 1024)  # several body chunks
    response = alice.post(
        "/v1/files",
        data={"note": "a text field before the file is ignored"},
        files={"upload": ("r\u00e9sum\u00e9.pdf", data, "application/pdf")},
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["filename"] == "r\u00e9sum\u00e9.pdf"
    assert stored["mime_type"] == "application/pdf"
    assert stored["size"] == len(data)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()  # not the envelope's
    assert alice.get(f"/v1/files/{stored['file_id']}/content").content == data


def test_curl_dash_f(server: LiveServer, tmp_path: Path) -> None:
    source = tmp_path / "notes.csv"
    source.write_text("a,b\n1,2\n")
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"Authorization: Bearer {ALICE}",
            "-F",
            f"file=@{source}",
            f"{server.url}/v1/files",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    stored = httpx.Response(200, content=out.stdout).json()
    assert stored["filename"] == "notes.csv" and stored["size"] == 8
    assert stored["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_a_binary_part_without_a_name_or_type_is_typed_from_its_content(
    alice: httpx.Client,
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(500)
    stored = alice.post("/v1/files", files={"file": (None, png)}).json()
    # No filename: not "text/plain" by default, and no name taken from the envelope.
    assert stored["mime_type"] == "image/png"
    binary = alice.post(
        "/v1/files", files={"file": ("", os.urandom(300), "application/octet-stream")}
    ).json()
    assert binary["mime_type"] != "text/plain"


def test_form_uploads_have_the_raw_bodys_limit_and_refuse_bad_envelopes(
    alice: httpx.Client,
) -> None:
    before = alice.get("/v1/files").json()["total"]
    too_big = alice.post("/v1/files", files={"file": ("big.bin", os.urandom(LIMIT + 1))})
    assert_error(too_big, 413)
    two = alice.post("/v1/files", files=[("file", ("a.txt", b"a")), ("other", ("b.txt", b"b"))])
    assert_error(two, 400, "InvalidInputError")
    assert "one file" in two.json()["error"]["message"]
    fields_only = alice.post("/v1/files", data={"just": "a field"}, files={"x": (None, b"")})
    assert_error(fields_only, 400, "InvalidInputError")
    assert "no file part" in fields_only.json()["error"]["message"]
    cut = alice.post(
        "/v1/files",
        content=b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="c.txt"'
        b"\r\n\r\nhalf a file",
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert_error(cut, 400, "InvalidInputError")
    no_boundary = alice.post(
        "/v1/files", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert_error(no_boundary, 400, "InvalidInputError")
    assert alice.get("/v1/files").json()["total"] == before  # nothing refused was stored
